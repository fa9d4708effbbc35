//! The trading gate: the trading state as everything about to send an order reads it, without a
//! lock: open, exits only (reducing), or closed (halted).
//!
//! The risk supervisor owns the breaker and publishes it here. A halt may also close the gate ahead
//! of the supervisor (the control socket does, so a halt is obeyed within a second even while the
//! supervisor waits on an order in flight); only the supervisor opens it again, when it resumes.
//! Closing early is always safe: the worst case is one copy refused a moment sooner. An order
//! approved before a switch to reducing and still waiting for its turn reads the gate again before
//! it is sent: a BUY then stays home.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use crate::domain::Side;
use crate::risk::TradingState;

const OPEN: u8 = 0;
const EXITS_ONLY: u8 = 1;
const CLOSED: u8 = 2;

const fn level(state: TradingState) -> u8 {
    match state {
        TradingState::Active => OPEN,
        TradingState::Reducing => EXITS_ONLY,
        TradingState::Halted => CLOSED,
    }
}

/// Shared trading state for senders, and a bell rung at each change for those waiting on it.
#[derive(Debug, Clone, Default)]
pub struct TradingGate {
    level: Arc<AtomicU8>,
    bell: Arc<tokio::sync::Notify>,
    /// Halts so far (each change into closed): the operator's own close, which goes out whatever
    /// the trading state, stops at a halt raised after it started.
    halts: Arc<AtomicU64>,
    /// Orders whose POST passed the gate and has not been answered yet.
    posting: Arc<AtomicU64>,
}

/// One POST under way, counted by [`TradingGate::posting`] until dropped.
#[derive(Debug)]
pub struct PostUnderWay(Arc<AtomicU64>);

impl Drop for PostUnderWay {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl TradingGate {
    /// A gate that starts open or closed.
    #[must_use]
    pub fn new(halted: bool) -> Self {
        Self {
            level: Arc::new(AtomicU8::new(if halted { CLOSED } else { OPEN })),
            bell: Arc::default(),
            halts: Arc::default(),
            posting: Arc::default(),
        }
    }

    /// Counts a POST about to leave, before its last check of the gate (so that a halt that
    /// closes the gate and then reads [`Self::posts_under_way`] counts every POST that check let
    /// through; an order between its count and its check when the halt comes is counted too,
    /// though the check then stops it). The count drops with the returned guard.
    #[must_use]
    pub fn posting(&self) -> PostUnderWay {
        self.posting.fetch_add(1, Ordering::SeqCst);
        PostUnderWay(self.posting.clone())
    }

    /// POSTs under way now (and market orders the exchange holds for a matching delay): read by a
    /// halt after it closed the gate, the orders that had already left (or were leaving) when it
    /// came, which it does not recall.
    #[must_use]
    pub fn posts_under_way(&self) -> u64 {
        self.posting.load(Ordering::SeqCst)
    }

    /// Resolves at the gate's next change of level, or the next halt asked for while closed (the
    /// supervisor publishes the same level many times a second; that rings nothing). Created
    /// before the gate is read, it misses no change made after that read: an order resting on the
    /// book that waits between lookups wakes at once when trading stops.
    pub fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.bell.notified()
    }

    /// Nothing new may be sent from now on: a halt asked for, counted even while already closed
    /// (the operator's last word stops a close started before it).
    pub fn close(&self) {
        let before = self.level.fetch_max(CLOSED, Ordering::SeqCst);
        if before == CLOSED {
            self.halts.fetch_add(1, Ordering::SeqCst);
            // No change of level, but a halt: the operator's close waiting (a retry's pause)
            // stops at it, so those waiting are woken to look again.
            self.bell.notify_waiters();
        }
        self.moved(before, CLOSED);
    }

    /// Sending is allowed again (the risk supervisor only, on resume).
    pub fn open(&self) {
        self.set(TradingState::Active);
    }

    /// Exits only becomes open; any other level stays (the daemon lifting its own `reducing`
    /// never opens a gate a halt closed).
    pub fn lift_exits_only(&self) {
        if self.level.compare_exchange(EXITS_ONLY, OPEN, Ordering::SeqCst, Ordering::SeqCst).is_ok() {
            self.moved(EXITS_ONLY, OPEN);
        }
    }

    /// The gate as `state` says (the risk supervisor only: it may open it).
    pub fn set(&self, state: TradingState) {
        let before = self.level.swap(level(state), Ordering::SeqCst);
        self.moved(before, level(state));
    }

    /// The gate at least as restrictive as `state`: never opens what a halt closed meanwhile.
    pub fn restrict(&self, state: TradingState) {
        let before = self.level.fetch_max(level(state), Ordering::SeqCst);
        self.moved(before, before.max(level(state)));
    }

    /// The level went from `before` to `after`: a change rings the bell, a close counts a halt.
    fn moved(&self, before: u8, after: u8) {
        if before == after {
            return;
        }
        if after == CLOSED {
            self.halts.fetch_add(1, Ordering::SeqCst);
        }
        self.bell.notify_waiters();
    }

    /// How many halts there have been: a halt raised after a reading of it makes the count differ.
    #[must_use]
    pub fn halts(&self) -> u64 {
        self.halts.load(Ordering::SeqCst)
    }

    /// True while nothing may be sent.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.level.load(Ordering::SeqCst) == CLOSED
    }

    /// The trading state the gate holds now (as the risk supervisor last published it, or closed
    /// early by a halt).
    #[must_use]
    pub fn trading(&self) -> TradingState {
        match self.level.load(Ordering::SeqCst) {
            OPEN => TradingState::Active,
            EXITS_ONLY => TradingState::Reducing,
            _ => TradingState::Halted,
        }
    }

    /// Whether an order on `side` may be sent now: anything while open, a SELL (an exit) while
    /// reducing, nothing while closed.
    #[must_use]
    pub fn allows(&self, side: Side) -> bool {
        match self.level.load(Ordering::SeqCst) {
            OPEN => true,
            EXITS_ONLY => side == Side::Sell,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_state_lets_through_what_it_should_and_a_halt_is_never_undone_by_a_restriction() {
        let g = TradingGate::new(false);
        assert!(g.allows(Side::Buy) && g.allows(Side::Sell));
        g.restrict(TradingState::Reducing);
        assert!(!g.allows(Side::Buy) && g.allows(Side::Sell) && !g.is_closed());
        g.close();
        assert!(!g.allows(Side::Buy) && !g.allows(Side::Sell) && g.is_closed());
        g.restrict(TradingState::Reducing);
        assert!(g.is_closed(), "a halt from the control socket stays");
        g.set(TradingState::Reducing);
        assert!(g.allows(Side::Sell) && !g.allows(Side::Buy));
        g.open();
        assert!(g.allows(Side::Buy));
    }

    #[test]
    fn a_post_under_way_is_counted_until_its_guard_drops() {
        let g = TradingGate::new(false);
        let first = g.posting();
        let second = g.clone().posting();
        assert_eq!(g.posts_under_way(), 2, "clones share the count");
        drop(first);
        assert_eq!(g.posts_under_way(), 1);
        drop(second);
        assert_eq!(g.posts_under_way(), 0);
    }

    #[test]
    fn the_gate_says_the_trading_state_it_holds() {
        for state in [TradingState::Active, TradingState::Reducing, TradingState::Halted] {
            let g = TradingGate::new(false);
            g.set(state);
            assert_eq!(g.trading(), state);
        }
        let g = TradingGate::new(false);
        g.close();
        assert_eq!(g.trading(), TradingState::Halted, "closed early by a halt");
    }

    #[test]
    fn the_daemon_lifting_its_reducing_never_opens_a_gate_a_halt_closed() {
        // (the gate before, open after the lift)
        for (before, opens) in
            [(TradingState::Reducing, true), (TradingState::Halted, false), (TradingState::Active, true)]
        {
            let g = TradingGate::new(false);
            g.set(before);
            g.lift_exits_only();
            assert_eq!(g.allows(Side::Buy), opens, "{before:?}");
        }
        // A halt that closed the gate ahead of its message: the lift leaves it closed.
        let g = TradingGate::new(false);
        g.restrict(TradingState::Reducing);
        g.close();
        g.lift_exits_only();
        assert!(g.is_closed());
    }

    #[test]
    fn each_halt_asked_for_and_each_move_into_closed_counts_one_halt_and_nothing_else_does() {
        let g = TradingGate::new(false);
        let mut want = 0;
        for (step, halts) in [
            ("close", 1),
            ("close", 1),
            ("restrict reducing", 0),
            ("set halted", 0),
            ("set reducing", 0),
            ("restrict halted", 1),
            ("open", 0),
            ("set halted", 1),
        ] {
            match step {
                "close" => g.close(),
                "restrict reducing" => g.restrict(TradingState::Reducing),
                "restrict halted" => g.restrict(TradingState::Halted),
                "set halted" => g.set(TradingState::Halted),
                "set reducing" => g.set(TradingState::Reducing),
                _ => g.open(),
            }
            want += halts;
            assert_eq!(g.halts(), want, "after {step}");
        }
    }

    #[tokio::test]
    async fn a_waiter_wakes_at_a_change_made_after_it_began_waiting_and_not_at_a_republish() {
        let g = TradingGate::new(false);
        let same = g.changed();
        g.set(TradingState::Active);
        g.restrict(TradingState::Active);
        let mut same = std::pin::pin!(same);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(std::future::Future::poll(same.as_mut(), &mut cx).is_pending(), "the same level rings nothing");
        let wake = g.changed();
        let other = g.clone();
        std::thread::spawn(move || other.close());
        wake.await;
        assert!(g.is_closed());
        // A halt asked for while already closed wakes the waiters too (the operator's close
        // stops at it), and counts.
        let halts = g.halts();
        let again = g.changed();
        let other = g.clone();
        std::thread::spawn(move || other.close());
        again.await;
        assert_eq!(g.halts(), halts + 1);
    }
}
