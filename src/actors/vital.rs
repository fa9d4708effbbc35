//! Actors the daemon cannot trade without, and what happens when one of them dies.
//!
//! actix runs each actor as a task on the runtime: one whose handler panics is dropped and gone,
//! while every other actor goes on. A dead watcher no longer copies its target, a dead notifier
//! no longer reports, a dead Telegram actor no longer takes `/halt`, and the systemd watchdog
//! (which asks the supervisor only) is still fed: a half-running daemon that looks healthy. A
//! stopped one is better: systemd starts it again (`Restart=on-failure`), and the start recovers
//! from the journal what the dead actor left, as after a `kill -9` (every step of a copy is
//! journaled before it acts). A panic that comes back at every start ends in systemd giving up,
//! which the operator is told of on Telegram (`polycopy-stopped.service`).
//!
//! Panics contained on purpose (a task of its own, such as one copy's sizing or a report's chart)
//! are not an actor's death and do not end the daemon.

use std::sync::atomic::{AtomicBool, Ordering};

/// The exit status of a daemon ended by an actor's death (`EX_SOFTWARE`): not one of
/// `RestartPreventExitStatus`, so systemd starts it again.
pub const EXIT_ACTOR_DIED: i32 = 70;

/// Set once the daemon runs: actors built by tests and commands never end their process.
static ARMED: AtomicBool = AtomicBool::new(false);

/// From now on, a [`Vital`] dropped by a panic ends the process.
pub fn arm() {
    ARMED.store(true, Ordering::Relaxed);
}

/// Held by an actor the daemon cannot trade without: dropped while its thread unwinds from a
/// panic (the actor's task dying), it ends the daemon with [`EXIT_ACTOR_DIED`].
#[derive(Debug)]
pub struct Vital(&'static str);

impl Vital {
    /// A guard for the actor `name` (as the operator would name it: "the copier").
    #[must_use]
    pub const fn new(name: &'static str) -> Self {
        Self(name)
    }
}

impl Drop for Vital {
    fn drop(&mut self) {
        if std::thread::panicking() && ARMED.load(Ordering::Relaxed) {
            // Straight to stderr as well: the journal of systemd gets it even if the log's own
            // layer is what panicked.
            eprintln!(
                "polycopy: {} died of a panic; the daemon ends so that systemd starts it again from its journal",
                self.0
            );
            tracing::error!(
                actor = self.0,
                "an actor died of a panic; the daemon ends so that systemd starts it again"
            );
            std::process::exit(EXIT_ACTOR_DIED);
        }
    }
}
