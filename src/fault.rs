//! Fault injection for the crash tests: the process dies at a named point when `POLYCOPY_FAULT`
//! names it (a comma-separated list names several). Compiled only with the `fault-injection` feature (the test command enables it); a
//! release build has no such hook at all.

/// Whether `POLYCOPY_FAULT` names `point`.
#[cfg(feature = "fault-injection")]
fn named(point: &str) -> bool {
    std::env::var("POLYCOPY_FAULT").is_ok_and(|v| v.split(',').any(|p| p.trim() == point))
}

/// Aborts the process (as hard as SIGKILL) when `POLYCOPY_FAULT` names `point`.
#[cfg(feature = "fault-injection")]
pub fn abort_at(point: &str) {
    if named(point) {
        tracing::error!(point, "fault injection: aborting");
        std::process::abort();
    }
}

/// Without the `fault-injection` feature: nothing.
#[cfg(not(feature = "fault-injection"))]
#[inline]
pub const fn abort_at(_point: &str) {}

/// Holds the calling task while the file `POLYCOPY_FAULT_HOLD` exists, when `POLYCOPY_FAULT`
/// names `point`: a test stretches a window (a journal write that waits its turn, say) to act inside it.
#[cfg(feature = "fault-injection")]
pub async fn hold_at(point: &str) {
    if named(point) {
        let Ok(file) = std::env::var("POLYCOPY_FAULT_HOLD") else { return };
        tracing::warn!(point, file, "fault injection: holding while the file exists");
        while std::path::Path::new(&file).exists() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

/// Without the `fault-injection` feature: nothing.
#[cfg(not(feature = "fault-injection"))]
#[inline]
pub async fn hold_at(_point: &str) {}

/// Blocks the calling thread while the file `POLYCOPY_FAULT_HOLD` exists, when `POLYCOPY_FAULT`
/// names `point`: a journal write stretched on the writer's own thread (a slow disk), every
/// request queued behind it.
#[cfg(feature = "fault-injection")]
pub fn hold_here(point: &str) {
    if named(point) {
        let Ok(file) = std::env::var("POLYCOPY_FAULT_HOLD") else { return };
        tracing::warn!(point, file, "fault injection: holding the thread while the file exists");
        while std::path::Path::new(&file).exists() {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

/// Without the `fault-injection` feature: nothing.
#[cfg(not(feature = "fault-injection"))]
#[inline]
pub const fn hold_here(_point: &str) {}

/// How far the daemon's wall clock ([`crate::store::now_ms`]) is moved forward, ms: the number in
/// the file `POLYCOPY_FAULT_CLOCK`, read again every 20 ms on a thread of its own (0 while it is
/// missing or unreadable). A test moves a running daemon past the trading day's roll this way.
#[cfg(feature = "fault-injection")]
pub fn clock_shift_ms() -> i64 {
    use std::sync::atomic::{AtomicI64, Ordering};
    static SHIFT: AtomicI64 = AtomicI64::new(0);
    static WATCH: std::sync::Once = std::sync::Once::new();
    fn read(file: &str) -> i64 {
        std::fs::read_to_string(file).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0)
    }
    WATCH.call_once(|| {
        let Ok(file) = std::env::var("POLYCOPY_FAULT_CLOCK") else { return };
        // Read at once too: a command's first reading of the clock is already moved.
        SHIFT.store(read(&file), Ordering::Relaxed);
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(std::time::Duration::from_millis(20));
                SHIFT.store(read(&file), Ordering::Relaxed);
            }
        });
    });
    SHIFT.load(Ordering::Relaxed)
}

/// Without the `fault-injection` feature: the clock is never moved.
#[cfg(not(feature = "fault-injection"))]
#[inline]
pub const fn clock_shift_ms() -> i64 {
    0
}

/// A number a test sets in the environment variable `name` (a smaller bound, say), when the
/// `fault-injection` feature is on and it parses.
#[cfg(feature = "fault-injection")]
#[must_use]
pub fn number(name: &str) -> Option<usize> {
    std::env::var(name).ok()?.trim().parse().ok()
}

/// Without the `fault-injection` feature: never set.
#[cfg(not(feature = "fault-injection"))]
#[inline]
#[must_use]
pub const fn number(_name: &str) -> Option<usize> {
    None
}

/// Panics when `POLYCOPY_FAULT` names `point`: a test kills one actor (its task) and watches what
/// the daemon does about it.
#[cfg(feature = "fault-injection")]
#[allow(clippy::panic)]
pub fn panic_at(point: &str) {
    if named(point) {
        tracing::warn!(point, "fault injection: panicking");
        panic!("fault injection: {point}");
    }
}

/// Without the `fault-injection` feature: nothing.
#[cfg(not(feature = "fault-injection"))]
#[inline]
pub const fn panic_at(_point: &str) {}
