//! The copier's order of work per token: BUYs of one token are sized side by side (a BUY's size
//! depends on nobody else's; the risk supervisor's reservations keep the caps), while a SELL waits
//! for every copy of its token that came before it (it is sized on our position and the target's
//! balance after them) and holds back every copy that comes after it. Order of arrival is kept: a
//! copy never starts before one that arrived earlier for the same token. Pure; the copier does the
//! work.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// How a copy shares its token's lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Beside other shared copies (BUYs).
    Shared,
    /// Alone (SELLs, recovered intents).
    Exclusive,
}

#[derive(Debug)]
struct Lane<T> {
    running: usize,
    exclusive_running: bool,
    waiting: VecDeque<(Access, T)>,
}

/// The lanes of every token with work.
#[derive(Debug)]
pub struct Lanes<K, T> {
    lanes: HashMap<K, Lane<T>>,
    /// Most shared copies of one token at once (a backfill of thousands must not start thousands).
    max_shared: usize,
}

impl<K: Eq + Hash + Copy, T> Lanes<K, T> {
    /// Lanes letting at most `max_shared` shared copies of one token run at once.
    #[must_use]
    pub fn new(max_shared: usize) -> Self {
        Self { lanes: HashMap::new(), max_shared: max_shared.max(1) }
    }

    /// Offers `item` for `key`: returned when it may start now, else queued.
    pub fn arrive(&mut self, key: K, access: Access, item: T) -> Option<T> {
        let lane = self.lanes.entry(key).or_insert_with(|| Lane {
            running: 0,
            exclusive_running: false,
            waiting: VecDeque::new(),
        });
        if lane.waiting.is_empty() && may_start(lane, access, self.max_shared) {
            start(lane, access);
            return Some(item);
        }
        lane.waiting.push_back((access, item));
        None
    }

    /// One copy of `key` is done (`access` as it arrived); returns those that may start now, in
    /// order of arrival.
    pub fn done(&mut self, key: K, access: Access) -> Vec<T> {
        let Some(lane) = self.lanes.get_mut(&key) else { return Vec::new() };
        lane.running = lane.running.saturating_sub(1);
        if access == Access::Exclusive {
            lane.exclusive_running = false;
        }
        let mut ready = Vec::new();
        while let Some((a, _)) = lane.waiting.front() {
            if !may_start(lane, *a, self.max_shared) {
                break;
            }
            let a = *a;
            start(lane, a);
            if let Some((_, item)) = lane.waiting.pop_front() {
                ready.push(item);
            }
        }
        if lane.running == 0 && lane.waiting.is_empty() {
            self.lanes.remove(&key);
        }
        ready
    }

    /// True when no copy runs or waits.
    #[must_use]
    pub fn is_idle(&self) -> bool {
        self.lanes.is_empty()
    }
}

const fn may_start<T>(lane: &Lane<T>, access: Access, max_shared: usize) -> bool {
    match access {
        Access::Shared => !lane.exclusive_running && lane.running < max_shared,
        Access::Exclusive => lane.running == 0,
    }
}

const fn start<T>(lane: &mut Lane<T>, access: Access) {
    lane.running += 1;
    if matches!(access, Access::Exclusive) {
        lane.exclusive_running = true;
    }
}

#[cfg(test)]
mod tests {
    use super::Access::{Exclusive as X, Shared as S};
    use super::*;

    /// A script of arrivals (`+`) and completions (`-`) on one token, and what may run after each.
    #[test]
    fn buys_run_together_a_sell_runs_alone_and_order_is_kept() {
        enum Step {
            Arrive(Access, u32),
            Done(Access),
        }
        use Step::{Arrive as A, Done as D};
        // (steps, ids started by each step)
        let cases: Vec<(Vec<Step>, Vec<Vec<u32>>)> = vec![
            // BUYs start at once, up to the cap (3 here); the next starts when one is done.
            (vec![A(S, 1), A(S, 2), A(S, 3), A(S, 4), D(S)], vec![vec![1], vec![2], vec![3], vec![], vec![4]]),
            // A SELL waits for the BUYs before it; the BUY after the SELL waits for the SELL.
            (
                vec![A(S, 1), A(S, 2), A(X, 3), A(S, 4), D(S), D(S), D(X)],
                vec![vec![1], vec![2], vec![], vec![], vec![], vec![3], vec![4]],
            ),
            // A SELL first: everything after it waits; then the BUYs after it start together.
            (vec![A(X, 1), A(S, 2), A(S, 3), D(X)], vec![vec![1], vec![], vec![], vec![2, 3]]),
            // Two SELLs in a row run one after the other.
            (vec![A(X, 1), A(X, 2), D(X), D(X)], vec![vec![1], vec![], vec![2], vec![]]),
        ];
        for (i, (steps, want)) in cases.into_iter().enumerate() {
            let mut lanes: Lanes<u8, u32> = Lanes::new(3);
            let got: Vec<Vec<u32>> = steps
                .into_iter()
                .map(|s| match s {
                    A(a, id) => lanes.arrive(7, a, id).into_iter().collect(),
                    D(a) => lanes.done(7, a),
                })
                .collect();
            assert_eq!(got, want, "case {i}");
        }
    }

    #[test]
    fn tokens_do_not_wait_for_each_other_and_idle_is_seen() {
        let mut lanes: Lanes<u8, u32> = Lanes::new(3);
        assert_eq!(lanes.arrive(1, X, 10), Some(10));
        assert_eq!(lanes.arrive(2, X, 20), Some(20));
        assert!(!lanes.is_idle());
        assert!(lanes.done(1, X).is_empty());
        assert!(lanes.done(2, X).is_empty());
        assert!(lanes.is_idle());
    }
}
