//! Back-pressure from the copier to the feed. Fills are journaled before they are handed on, so a
//! flood (a long backfill, a target trading thousands of times in a block) is safe on disk; but
//! each fill handed on becomes a copy in memory and a sizing task with network reads. At most
//! [`MAX_COPIES_WAITING`] copies are between the registry's hand-off and their decision: the next
//! waits for a slot, the registry's answer to the feed waits for it, and the feed reads no further
//! range meanwhile (its checkpoint stays where the journal is, so nothing is lost by waiting).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::warn;

use crate::metrics::Metrics;

/// Copies admitted and not yet decided, at most. A steady poll hands on tens; a backfill of tens
/// of thousands of fills keeps this many sizing side by side (a few MB), which keeps the
/// placement slots busy without starting a task per fill.
pub const MAX_COPIES_WAITING: usize = 1_024;

/// Slots for copies between the hand-off and their decision (see the module's doc).
#[derive(Debug, Clone)]
pub struct Admission {
    slots: Arc<Semaphore>,
    cap: usize,
    metrics: Option<Arc<Metrics>>,
    /// When the operator was last told the feed waits (at most once a minute).
    told: Arc<Mutex<Option<Instant>>>,
}

impl Admission {
    /// `cap` slots (at least one), shown as `polycopy_copies_waiting` in `metrics` when given.
    #[must_use]
    pub fn new(cap: usize, metrics: Option<Arc<Metrics>>) -> Self {
        Self { slots: Arc::new(Semaphore::new(cap.max(1))), cap: cap.max(1), metrics, told: Arc::default() }
    }

    /// The daemon's slots: [`MAX_COPIES_WAITING`], or what a test names.
    #[must_use]
    pub fn for_daemon(metrics: Option<Arc<Metrics>>) -> Self {
        Self::new(crate::fault::number("POLYCOPY_FAULT_COPIES_WAITING").unwrap_or(MAX_COPIES_WAITING), metrics)
    }

    /// Waits for a free slot; the copy holds it until it is decided (or dropped).
    pub async fn admit(&self) -> Admitted {
        // The semaphore is never closed; were it, the copy goes on without a slot rather than
        // being lost.
        let slot = match self.slots.clone().try_acquire_owned() {
            Ok(slot) => Some(slot),
            Err(_) => {
                self.tell_waiting();
                self.slots.clone().acquire_owned().await.ok()
            }
        };
        if let Some(m) = &self.metrics {
            m.copies_waiting.fetch_add(1, Ordering::Relaxed);
        }
        Admitted { _slot: slot, metrics: self.metrics.clone() }
    }
}

impl Admission {
    /// Logs that the feed waits for the copier, once a minute at most while it lasts.
    fn tell_waiting(&self) {
        let Ok(mut told) = self.told.lock() else { return };
        if told.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
            *told = Some(Instant::now());
            warn!(
                bound = self.cap,
                "copies waiting for a decision reached their bound: the chain feed waits until some are decided (fills stay journaled, none is lost)"
            );
        }
    }
}

/// A copy's slot, freed when dropped.
#[derive(Debug)]
pub struct Admitted {
    _slot: Option<OwnedSemaphorePermit>,
    metrics: Option<Arc<Metrics>>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Some(m) = &self.metrics {
            m.copies_waiting.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_waits_for_a_slot_until_one_is_freed() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let metrics = Arc::new(Metrics::default());
            let a = Admission::new(2, Some(metrics.clone()));
            let first = a.admit().await;
            let _second = a.admit().await;
            assert_eq!(metrics.copies_waiting.load(Ordering::Relaxed), 2);
            let mut third = Box::pin(a.admit());
            assert!(futures_util::FutureExt::now_or_never(&mut third).is_none(), "no slot while two copies wait");
            drop(first);
            let _third = third.await;
            assert_eq!(metrics.copies_waiting.load(Ordering::Relaxed), 2);
        });
    }
}
