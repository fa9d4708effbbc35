//! The actix actors and their wiring. Data flows
//! `ChainFeed → Registry → WalletWatcher (one per target) → Copier → RiskSupervisor → Executor`,
//! with the `StoreActor` journaling each step and the `Notifier` hearing about every action.

pub mod copier;
pub mod executor;
pub mod handoff;
pub mod lanes;
pub mod live_executor;
pub mod notifier;
pub mod risk_supervisor;
pub mod store;
pub mod system;
pub mod vital;
pub mod watcher;

pub use system::{DaemonConfig, DaemonError, run_daemon};

/// A measured duration in whole microseconds, as logged (saturating: never wraps).
#[must_use]
pub fn micros(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// An actor's answer to `request` (an `Addr::send`), or [`actix::MailboxError::Timeout`] after
/// `wait`. A tokio timer rather than actix's own `Request::timeout`, which is not armed while the
/// request waits for room in a full mailbox: a busy actor's would never time out.
///
/// # Errors
/// The actor stopped, or did not answer within `wait`.
pub async fn within<T>(
    wait: std::time::Duration,
    request: impl std::future::Future<Output = Result<T, actix::MailboxError>>,
) -> Result<T, actix::MailboxError> {
    tokio::time::timeout(wait, request).await.unwrap_or(Err(actix::MailboxError::Timeout))
}
