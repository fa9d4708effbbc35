//! A wallet's fills over a block range, read from the chain in chunks (paced by the RPC client)
//! and cached in the journal: buried blocks are read once, so a second run reads only what is new
//! and an interrupted read resumes where it stopped. Blocks near the head may still reorganize:
//! they are read every time and never cached.

use std::time::Duration;

use alloy::primitives::Address;

use crate::chain::history::read_fills;
use crate::chain::rpc::{ChainError, Rpc};
use crate::domain::{TargetFill, addr_lower};
use crate::store::{Coverage, Store};
use crate::vet::Trade;

/// Attempts per chunk before the read gives up (the cache keeps what was read).
const ATTEMPTS: u32 = 4;

/// What to read.
#[derive(Debug, Clone)]
pub struct Span {
    /// The wallet.
    pub wallet: Address,
    /// The exchanges whose fills count.
    pub exchanges: Vec<Address>,
    /// First block.
    pub from: u64,
    /// Last block.
    pub to: u64,
    /// Last block buried deep enough to cache.
    pub buried: u64,
    /// Blocks per `eth_getLogs`.
    pub chunk: u64,
}

/// What was read.
#[derive(Debug, Default)]
pub struct History {
    /// The fills, oldest first: (block, log index, fill).
    pub fills: Vec<(u64, u64, Trade)>,
    /// Blocks answered from the cache.
    pub cached_blocks: u64,
    /// Blocks read from the chain.
    pub read_blocks: u64,
    /// The wallet's `OrderFilled` logs that could not be decoded, left out of the fills (their
    /// chunks are not cached, so a later run reads them again).
    pub undecodable: usize,
}

/// Why the history could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The node failed, even after retries.
    #[error("{0}")]
    Chain(#[from] ChainError),
    /// The journal's cache failed.
    #[error("the vet cache in the journal: {0}")]
    Cache(#[from] crate::store::StoreError),
    /// The node does not keep logs that old.
    #[error(
        "the node does not serve logs of blocks {from}..={to} ({cause}): it keeps less history than the \
         period asks for. Ask for fewer --days, or use an archive node (POLYGON_RPC_URL)"
    )]
    Pruned {
        /// Range start.
        from: u64,
        /// Range end.
        to: u64,
        /// What the node said.
        cause: String,
    },
}

/// The cache key of a set of exchanges: a cache read under other exchanges would miss fills.
#[must_use]
pub fn scope(exchanges: &[Address]) -> String {
    let mut v: Vec<String> = exchanges.iter().map(addr_lower).collect();
    v.sort();
    v.join(",")
}

/// One stretch of blocks to read: forward or backward (outward from the cache), cached or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stretch {
    from: u64,
    to: u64,
    backward: bool,
    cache: bool,
}

/// What must be read for `span` given the cache's coverage (pure; see the tests).
fn plan(span: &Span, cov: Option<Coverage>) -> Vec<Stretch> {
    let buried_to = span.to.min(span.buried);
    let mut out = Vec::new();
    let mut push = |from: u64, to: u64, backward: bool, cache: bool| {
        if from <= to {
            out.push(Stretch { from, to, backward, cache });
        }
    };
    match cov {
        Some(c) => {
            if c.from > span.from {
                push(span.from, c.from - 1, true, true);
            }
            push(c.to + 1, buried_to, false, true);
        }
        None => push(span.from, buried_to, false, true),
    }
    push(span.from.max(buried_to + 1), span.to, false, false);
    out
}

/// True when the cached range cannot be grown into `span` without a gap: it is forgotten.
fn disjoint(span: &Span, c: Coverage) -> bool {
    c.to + 1 < span.from || c.from > span.to.min(span.buried) + 1
}

/// Reads `span`, from the cache where it can; `progress(done, total, fills)` after every chunk.
///
/// # Errors
/// When the node or the cache fails (what was read stays cached).
pub async fn read(
    rpc: &Rpc,
    cache: Option<&Store>,
    span: &Span,
    progress: &mut dyn FnMut(u64, u64, usize),
) -> Result<History, HistoryError> {
    let key = scope(&span.exchanges);
    let mut cov = match cache {
        Some(s) => s.vet_coverage(span.wallet, &key)?,
        None => None,
    };
    if let (Some(s), Some(c)) = (cache, cov)
        && disjoint(span, c)
    {
        s.vet_forget(span.wallet)?;
        cov = None;
    }
    let stretches = plan(span, cov);
    let total: u64 = stretches.iter().map(|s| s.to - s.from + 1).sum();
    let mut h = History::default();
    let mut fresh = Vec::new();
    let mut found = 0;
    progress(0, total, 0);
    for st in &stretches {
        // The cache covers one contiguous range: after a chunk that is not cached (it had logs
        // that could not be decoded), the rest of the stretch is not cached either, or the range
        // would grow over the gap and hide it for good.
        let mut caching = st.cache;
        for (from, to) in chunks(st, span.chunk.max(1)) {
            let (fills, undecodable) = read_chunk(rpc, span, from, to).await?;
            h.read_blocks += to - from + 1;
            h.undecodable += undecodable;
            found += fills.len();
            caching &= undecodable == 0;
            match cache {
                Some(s) if caching => s.vet_store(span.wallet, &key, from, to, &fills)?,
                _ => fresh.extend(fills),
            }
            progress(h.read_blocks, total, found);
        }
    }
    if let Some(s) = cache {
        let buried_to = span.to.min(span.buried);
        if span.from <= buried_to {
            h.fills = s.vet_fills(span.wallet, span.from, buried_to)?;
        }
        h.cached_blocks = (span.to - span.from + 1).saturating_sub(h.read_blocks);
    }
    h.fills.extend(fresh);
    h.fills.sort_by_key(|(b, l, _)| (*b, *l));
    Ok(h)
}

/// `st` cut into chunks, in reading order (backward stretches from their newest end, so the cache
/// grows contiguously).
fn chunks(st: &Stretch, size: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    if st.backward {
        let mut hi = st.to;
        loop {
            let lo = hi.saturating_sub(size - 1).max(st.from);
            out.push((lo, hi));
            if lo == st.from {
                break;
            }
            hi = lo - 1;
        }
    } else {
        let mut lo = st.from;
        loop {
            let hi = lo.saturating_add(size - 1).min(st.to);
            out.push((lo, hi));
            if hi == st.to {
                break;
            }
            lo = hi + 1;
        }
    }
    out
}

/// One chunk's fills of the wallet, and how many of its logs could not be decoded; retried with a
/// doubling pause (a node's hiccup, the chain moving under a read near the head).
async fn read_chunk(
    rpc: &Rpc,
    span: &Span,
    from: u64,
    to: u64,
) -> Result<(Vec<(u64, u64, Trade)>, usize), HistoryError> {
    let mut pause = Duration::from_millis(500);
    let mut attempt = 1;
    loop {
        match read_fills(rpc, &span.exchanges, &[span.wallet], from, to).await {
            Ok(d) => {
                for (tx, li, e) in &d.undecodable {
                    tracing::warn!(tx = %tx, log_index = li, cause = %e, "undecodable OrderFilled log skipped");
                }
                let fills = d.fills.iter().filter(|f| f.wallet == span.wallet).map(as_trade).collect();
                return Ok((fills, d.undecodable.len()));
            }
            Err(ChainError::Rpc { message, .. }) if gone_for_good(&message, to > span.buried) => {
                return Err(HistoryError::Pruned { from, to, cause: message });
            }
            Err(e) if attempt >= ATTEMPTS => return Err(e.into()),
            Err(e) => tracing::warn!(from, to, attempt, cause = %e, "reading a chunk failed; trying again"),
        }
        tokio::time::sleep(pause).await;
        pause *= 2;
        attempt += 1;
    }
}

/// Whether a node's refusal says the range's history is gone (pruned), rather than not there yet:
/// near the head (`near_head`: the chunk reaches past the buried blocks), "header not found" is a
/// load-balanced node's backend lagging behind the one that named the head, tried again like any
/// hiccup, never answered with "use an archive node".
fn gone_for_good(message: &str, near_head: bool) -> bool {
    let m = message.to_ascii_lowercase();
    let not_yet = ["header not found", "not available", "unknown block"].iter().any(|p| m.contains(p));
    pruned(message) && !(near_head && not_yet)
}

/// What nodes say when they no longer keep a range's logs or receipts.
fn pruned(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    ["pruned", "missing trie node", "history has been pruned", "not available", "header not found", "historical state"]
        .iter()
        .any(|p| m.contains(p))
}

fn as_trade(f: &TargetFill) -> (u64, u64, Trade) {
    let at_ms = i64::try_from(f.block_ts).unwrap_or(i64::MAX).saturating_mul(1000);
    let taker = f.role == crate::domain::Role::Taker;
    (
        f.block_number,
        f.log_index,
        Trade { at_ms, side: f.side, token_id: f.token_id, shares: f.shares, price: f.price, taker },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(from: u64, to: u64, buried: u64) -> Span {
        Span { wallet: Address::ZERO, exchanges: Vec::new(), from, to, buried, chunk: 10 }
    }

    fn s(from: u64, to: u64, backward: bool, cache: bool) -> Stretch {
        Stretch { from, to, backward, cache }
    }

    #[test]
    fn reads_only_what_the_cache_lacks() {
        let cov = |from, to| Some(Coverage { from, to });
        let cases = [
            // Nothing cached: the buried part is read and cached, the head's part only read.
            (span(100, 200, 190), None, vec![s(100, 190, false, true), s(191, 200, false, false)]),
            // All of it cached but the unburied tail.
            (span(100, 200, 190), cov(100, 190), vec![s(191, 200, false, false)]),
            // The second run a day later: older blocks backward, newer forward.
            (
                span(50, 300, 290),
                cov(100, 190),
                vec![s(50, 99, true, true), s(191, 290, false, true), s(291, 300, false, false)],
            ),
            // A shorter period inside the cache: nothing to read.
            (span(120, 150, 190), cov(100, 190), vec![]),
        ];
        for (sp, c, want) in cases {
            assert_eq!(plan(&sp, c), want, "{sp:?} with {c:?}");
        }
        assert!(disjoint(&span(300, 400, 390), Coverage { from: 100, to: 190 }));
        assert!(!disjoint(&span(191, 400, 390), Coverage { from: 100, to: 190 }));
    }

    #[test]
    fn chunks_cover_a_stretch_exactly_in_reading_order() {
        assert_eq!(chunks(&s(1, 25, false, true), 10), vec![(1, 10), (11, 20), (21, 25)]);
        assert_eq!(chunks(&s(1, 25, true, true), 10), vec![(16, 25), (6, 15), (1, 5)]);
        assert_eq!(chunks(&s(0, 0, true, true), 10), vec![(0, 0)]);
        assert_eq!(chunks(&s(7, 7, false, true), 1), vec![(7, 7)]);
    }

    #[test]
    fn pruned_history_is_recognized() {
        assert!(pruned("missing trie node abc"));
        assert!(pruned("History has been pruned for this block"));
        assert!(!pruned("connection reset"));
        // (message, near the head, gone for good)
        for (message, near_head, gone) in [
            ("header not found", false, true),
            ("header not found", true, false),
            ("missing trie node abc", true, true),
            ("block not available", true, false),
            ("connection reset", false, false),
        ] {
            assert_eq!(gone_for_good(message, near_head), gone, "{message} {near_head}");
        }
    }
}
