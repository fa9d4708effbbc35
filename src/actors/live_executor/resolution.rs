//! Where the resolution of one order stands, and what a lookup or an answer leads to next.

use std::time::{Duration, Instant};

use crate::actors::executor::ExecError;
use crate::domain::Execution;

/// Sends of the same signed order a null lookup may lead to over the order's whole life: one in
/// its first window, one after a restart (whose send may have been counted and never left).
/// Background retries beyond that only look it up: each re-send would move its last send
/// forward, and its no-fill could never be decided while the exchange refused them all.
pub(super) const MAX_NULL_RESENDS: u32 = 2;

/// Where the resolution of one order stands.
#[derive(Debug)]
pub(super) struct Resolution {
    /// The next step is a lookup (else a send).
    pub(super) lookup_first: bool,
    /// It may be at the exchange: it was posted (now or before a restart).
    pub(super) ever_sent: bool,
    /// A send of it may have reached the exchange with its fate unknown (posted before a restart,
    /// or answered inconclusively). From then on no refusal is final: the exchange refuses the same
    /// order sent again once it filled it, a copy is stale by the time a resolver looks again, and
    /// only a lookup or our own fill on chain can say what the first send did.
    pub(super) uncertain: bool,
    /// The exchange said it has it ("Duplicated", resting, delayed): never sent again.
    pub(super) known: bool,
    /// Sent again in this window already.
    pub(super) resent: bool,
    /// Sends after a null lookup still allowed over the order's life (see [`MAX_NULL_RESENDS`]).
    pub(super) null_resends_left: u32,
    /// The next send is one a null lookup led to (counted as such in the journal).
    pub(super) after_null: bool,
    /// Known to rest on the book: watched until its expiry.
    pub(super) resting: bool,
    /// Its cancellation was asked for (trading stopped while it rested).
    pub(super) cancel_asked: bool,
    /// Cancels answered "not canceled" while it was never seen resting.
    pub(super) unheld_cancels: u32,
    /// Trading allowed its side at the last lookup.
    pub(super) sendable_at_lookup: bool,
    /// The last inconclusive answer, for the record.
    pub(super) last_unknown: String,
    pub(super) until: Instant,
    pub(super) wait: Duration,
    /// A market order the exchange holds for a matching delay (learnt in this resolution) is
    /// counted with the POSTs under way while this lives: a halt says it is not recalled (it may
    /// still match).
    pub(super) working: Option<crate::risk::gate::PostUnderWay>,
}

impl Resolution {
    pub(super) fn new(ever_sent: bool, window: Duration) -> Self {
        Self {
            lookup_first: ever_sent,
            ever_sent,
            uncertain: ever_sent,
            known: false,
            resent: false,
            null_resends_left: MAX_NULL_RESENDS,
            after_null: false,
            resting: false,
            cancel_asked: false,
            unheld_cancels: 0,
            sendable_at_lookup: true,
            last_unknown: String::new(),
            until: Instant::now() + window,
            wait: Duration::from_millis(250),
            working: None,
        }
    }

    pub(super) fn expired(&self) -> bool {
        Instant::now() >= self.until
    }

    pub(super) fn reset_window(&mut self, window: Duration) {
        self.until = Instant::now() + window;
        self.restart_backoff();
    }

    /// Starts the backoff between lookups again from its first step.
    pub(super) fn restart_backoff(&mut self) {
        self.wait = Duration::from_millis(250);
    }

    /// Backoff between lookups: 250 ms doubling to 4 s, never a tight loop.
    pub(super) fn next_wait(&mut self) -> Duration {
        let w = self.wait;
        self.wait = (self.wait * 2).min(Duration::from_secs(4));
        w
    }
}

/// What a lookup leads to.
pub(super) enum Step {
    /// The order's fate (or the window's end) is decided.
    Done(Result<Execution, ExecError>),
    /// Look again after a wait.
    Wait,
    /// Send the same signed order (once).
    Send,
}

/// Sends of one order the exchange refused for now, and whether our credentials were derived
/// again (once per order).
#[derive(Debug, Default)]
pub(super) struct Tries {
    pub(super) retries: u32,
    pub(super) reauthed: bool,
}

/// What a POST's answer leaves to do.
pub(super) enum AfterPost {
    /// The order's fate is known.
    Done(Result<Execution, ExecError>),
    /// Send again or look it up, as the resolution now says.
    Again,
}
