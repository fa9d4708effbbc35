//! What `/health` knows about the CLOB: when it last answered, and whether it accepts our
//! credentials. Updated by every venue call (and a periodic authenticated probe), read without a lock.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use super::venue::VenueError;

/// The CLOB as last seen.
#[derive(Debug, Default)]
pub struct Reachability {
    /// Unix ms of the last answer of any kind (an HTTP error is an answer); 0 = none yet.
    last_answer_ms: AtomicI64,
    /// The CLOB refused our credentials (401) on the last authenticated answer.
    auth_refused: AtomicBool,
    /// The last failure, scrubbed.
    last_error: Mutex<String>,
    /// Unix ms this connection was made (0: not known): a CLOB that never answers is stale too.
    since_ms: i64,
}

/// A copy of [`Reachability`] at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReachabilitySnapshot {
    /// Unix ms of the last answer (0: none).
    pub last_answer_ms: i64,
    /// 401 on the last authenticated answer.
    pub auth_refused: bool,
    /// The last failure's text.
    pub last_error: String,
    /// Unix ms the connection was made (0: not known).
    pub since_ms: i64,
}

impl Reachability {
    /// Nothing seen yet, for a connection made at `now_ms`.
    #[must_use]
    pub fn since(now_ms: i64) -> Self {
        Self { since_ms: now_ms, ..Self::default() }
    }

    /// Records the result of one call made at `now_ms`. An error status that says the CLOB could
    /// not serve us (5xx, 429, 425: [`VenueError::unanswered`]) or will not (403: a region block or
    /// a firewall) is not an answer: orders do not go out, so `/health` must not say reachable.
    pub fn record<T>(&self, r: &Result<T, VenueError>, now_ms: i64) {
        match r {
            Ok(_) => {
                self.last_answer_ms.store(now_ms, Ordering::Relaxed);
                self.auth_refused.store(false, Ordering::Relaxed);
            }
            Err(e @ VenueError::Status { status, .. }) if e.unanswered() || *status == 403 => {
                self.set_error(e.to_string());
            }
            Err(VenueError::Status { status, message }) => {
                self.last_answer_ms.store(now_ms, Ordering::Relaxed);
                if *status == 401 {
                    self.auth_refused.store(true, Ordering::Relaxed);
                    self.set_error(format!("401: {message}"));
                }
            }
            Err(e @ (VenueError::Timeout(_) | VenueError::Transport(_))) => self.set_error(e.to_string()),
            Err(_) => {}
        }
    }

    fn set_error(&self, e: String) {
        if let Ok(mut g) = self.last_error.lock() {
            *g = e;
        }
    }

    /// The current state.
    #[must_use]
    pub fn snapshot(&self) -> ReachabilitySnapshot {
        ReachabilitySnapshot {
            last_answer_ms: self.last_answer_ms.load(Ordering::Relaxed),
            auth_refused: self.auth_refused.load(Ordering::Relaxed),
            last_error: self.last_error.lock().map(|g| g.clone()).unwrap_or_default(),
            since_ms: self.since_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn only_an_answer_we_can_trade_behind_counts_as_one() {
        let status = |status| Err::<(), _>(VenueError::Status { status, message: "m".into() });
        // (result, counts as an answer, credentials refused)
        let cases = [
            (Ok(()), true, false),
            (status(400), true, false),
            (status(404), true, false),
            (status(401), true, true),
            (status(403), false, false),
            (status(425), false, false),
            (status(429), false, false),
            (status(502), false, false),
            (status(503), false, false),
            (Err(VenueError::Timeout(Duration::from_secs(1))), false, false),
            (Err(VenueError::Transport("refused".into())), false, false),
        ];
        for (r, answer, refused) in cases {
            let reach = Reachability::since(1);
            reach.record(&r, 50);
            let s = reach.snapshot();
            assert_eq!((s.last_answer_ms == 50, s.auth_refused), (answer, refused), "{r:?}");
            assert_eq!(s.last_error.is_empty(), answer && !refused, "{r:?}: {}", s.last_error);
        }
    }
}
