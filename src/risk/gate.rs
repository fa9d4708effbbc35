//! The trading gate: one flag, read without a lock by everything that is about to send an order.
//!
//! The risk supervisor owns the breaker and publishes it here. A halt may also close the gate ahead
//! of the supervisor (the control socket does, so a halt is obeyed within a second even while the
//! supervisor waits on an order in flight); only the supervisor opens it again, when it resumes.
//! Closing early is always safe: the worst case is one copy refused a moment sooner.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Shared "nothing may be sent" flag.
#[derive(Debug, Clone, Default)]
pub struct TradingGate(Arc<AtomicBool>);

impl TradingGate {
    /// A gate that starts open or closed.
    #[must_use]
    pub fn new(halted: bool) -> Self {
        Self(Arc::new(AtomicBool::new(halted)))
    }

    /// Nothing new may be sent from now on.
    pub fn close(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Sending is allowed again (the risk supervisor only, on resume).
    pub fn open(&self) {
        self.0.store(false, Ordering::SeqCst);
    }

    /// True while nothing may be sent.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}
