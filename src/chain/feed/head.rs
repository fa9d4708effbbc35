//! Whether the endpoint's head still moves: a node that is stuck, or cut off from its peers,
//! keeps answering with the same block, and through it no new fill is ever seen.

use std::time::{Duration, Instant};

/// The head after a read naming `head` at `now`, with since when it has been that block, given
/// what was seen before (`last`).
///
/// # Errors
/// For how many seconds the head has stayed, once that is longer than `limit` (zero: never).
pub fn head_moves(
    last: Option<(u64, Instant)>,
    head: u64,
    now: Instant,
    limit: Duration,
) -> Result<(u64, Instant), u64> {
    match last {
        Some((h, since)) if h == head => {
            let stayed = now.saturating_duration_since(since);
            if !limit.is_zero() && stayed > limit { Err(stayed.as_secs()) } else { Ok((h, since)) }
        }
        // A new block, or another endpoint's head (higher or lower): the count starts again.
        _ => Ok((head, now)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_that_stays_longer_than_the_limit_is_stuck_and_any_change_starts_the_count_again() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        // (last seen, head now, seconds since t0, limit, expected)
        let cases: [(Option<(u64, u64)>, u64, u64, u64, Result<(u64, u64), u64>); 7] = [
            (None, 10, 5, 60, Ok((10, 5))),
            (Some((10, 0)), 10, 60, 60, Ok((10, 0))),
            (Some((10, 0)), 10, 61, 60, Err(61)),
            (Some((10, 0)), 11, 500, 60, Ok((11, 500))),
            // Failed over to an endpoint behind the last one: it moves, so it is not stuck.
            (Some((10, 0)), 9, 500, 60, Ok((9, 500))),
            // Zero turns the check off.
            (Some((10, 0)), 10, 10_000, 0, Ok((10, 0))),
            (Some((10, 0)), 10, 3, 2, Err(3)),
        ];
        for (last, head, at, limit, want) in cases {
            let got = head_moves(last.map(|(h, a)| (h, t0 + s(a))), head, t0 + s(at), s(limit));
            let want = want.map(|(h, a)| (h, t0 + s(a)));
            assert_eq!(got, want, "{last:?} {head} at {at} limit {limit}");
        }
    }
}
