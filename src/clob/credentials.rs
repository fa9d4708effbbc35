//! Deriving our API credentials again after the CLOB refused them (401) on a lookup or a cancel:
//! one derivation at a time, the calls refused meanwhile asked again with its result, and a key
//! that stays refused not turned into a derivation per call.
//!
//! A derivation's caller may be dropped halfway (a lookup raced with a halt): nothing is recorded
//! until a derivation ends, so the next refused call (the halt's cancel) derives at once instead of
//! finding the credentials "just derived" and failing until the pause ran out.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// After a derivation that succeeded, how long until a refusal may derive again: credentials
/// refused right after they were derived (a revoked key) must not make every lookup a derivation.
const AFTER_DERIVED: Duration = Duration::from_secs(30);

/// After a derivation that failed (the CLOB down or slow), how long until the next may be tried:
/// the callers' own backoff paces them; this only keeps concurrent refusals from each trying.
const AFTER_FAILED: Duration = Duration::from_secs(2);

/// A derivation that ended.
#[derive(Clone, Copy, Debug)]
struct Attempt {
    at: Instant,
    derived: bool,
}

/// The credentials' generation and the last derivation after a refusal.
#[derive(Debug, Default)]
pub(crate) struct Rederivation {
    /// Bumped each time credentials are installed: a call sent with an older generation that was
    /// refused is asked again with the new credentials, with no derivation of its own.
    generation: AtomicU64,
    /// Held across a derivation, so that concurrent refusals wait for its result.
    last: tokio::sync::Mutex<Option<Attempt>>,
}

impl Rederivation {
    /// The generation of the credentials a call is about to use.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Records that new credentials were installed.
    pub(crate) fn installed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// After a call sent with generation `seen` was refused for its credentials: whether it may be
    /// asked once more, deriving them with `derive` (true when derived) unless newer credentials
    /// are installed already or a derivation ended too recently.
    pub(crate) async fn after_refusal<F>(&self, seen: u64, derive: impl FnOnce() -> F) -> bool
    where
        F: Future<Output = bool>,
    {
        if self.generation() != seen {
            return true;
        }
        let mut last = self.last.lock().await;
        // Another refused call derived them while this one waited for its turn.
        if self.generation() != seen {
            return true;
        }
        if !due(*last, Instant::now()) {
            return false;
        }
        let derived = derive().await;
        *last = Some(Attempt { at: Instant::now(), derived });
        derived
    }
}

/// Whether a refusal may derive the credentials again, given the last derivation that ended.
fn due(last: Option<Attempt>, now: Instant) -> bool {
    last.is_none_or(|a| now.saturating_duration_since(a.at) >= if a.derived { AFTER_DERIVED } else { AFTER_FAILED })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_derivation_is_due_by_the_last_ones_outcome_and_age() {
        let now = Instant::now() + Duration::from_secs(100);
        let ago = |s: u64, derived| Some(Attempt { at: now - Duration::from_secs(s), derived });
        let cases = [
            (None, true, "never derived"),
            (ago(1, true), false, "derived a second ago"),
            (ago(29, true), false, "derived 29 s ago"),
            (ago(30, true), true, "derived 30 s ago"),
            (ago(1, false), false, "failed a second ago"),
            (ago(2, false), true, "failed 2 s ago"),
        ];
        for (last, want, case) in cases {
            assert_eq!(due(last, now), want, "{case}");
        }
    }

    #[tokio::test]
    async fn a_refusal_after_newer_credentials_is_asked_again_without_deriving() {
        let r = Rederivation::default();
        let seen = r.generation();
        r.installed();
        assert!(r.after_refusal(seen, || async { panic!("no derivation") }).await);
    }

    #[tokio::test]
    async fn a_derivation_dropped_halfway_leaves_the_next_refusal_free_to_derive() {
        let r = Rederivation::default();
        let seen = r.generation();
        let dropped = r.after_refusal(seen, std::future::pending::<bool>);
        assert!(tokio::time::timeout(Duration::from_millis(10), dropped).await.is_err());
        assert!(r.after_refusal(seen, || async { true }).await, "derives at once");
        assert!(!r.after_refusal(seen, || async { true }).await, "not again right after one derived");
    }

    #[tokio::test]
    async fn a_failed_derivation_is_not_tried_again_at_once() {
        let r = Rederivation::default();
        let seen = r.generation();
        assert!(!r.after_refusal(seen, || async { false }).await);
        assert!(!r.after_refusal(seen, || async { panic!("paused") }).await);
    }
}
