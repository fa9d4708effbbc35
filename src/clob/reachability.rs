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
}

impl Reachability {
    /// Records the result of one call made at `now_ms`.
    pub fn record<T>(&self, r: &Result<T, VenueError>, now_ms: i64) {
        match r {
            Ok(_) => {
                self.last_answer_ms.store(now_ms, Ordering::Relaxed);
                self.auth_refused.store(false, Ordering::Relaxed);
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
        }
    }
}
