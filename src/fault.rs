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
