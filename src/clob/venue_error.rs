//! Why a CLOB call failed, with every text the SDK hands back scrubbed of our secrets, and the
//! timeout every call runs under.

use std::time::Duration;

use polymarket_client_sdk_v2::error::Status;

use crate::clob::order::OrderError;
use crate::config::env::scrub;

/// Why a CLOB call failed (texts are scrubbed of secrets).
#[derive(Debug, Clone, thiserror::Error)]
pub enum VenueError {
    /// Bad key or funder setup; the message says how to fix it.
    #[error("{0}")]
    Setup(String),
    /// The CLOB answered with an HTTP error.
    #[error("the CLOB answered {status}: {message}")]
    Status {
        /// HTTP status.
        status: u16,
        /// Its body.
        message: String,
    },
    /// No answer in time.
    #[error("the CLOB did not answer within {0:?}")]
    Timeout(Duration),
    /// Transport or decoding failure.
    #[error("the CLOB could not be reached: {0}")]
    Transport(String),
    /// No API credentials yet (the CLOB has not answered since the start): no request was made.
    #[error("the CLOB has not answered since the start: no API credentials yet, nothing was sent")]
    Unconnected,
    /// The SDK refused to build the order.
    #[error("order not built: {0}")]
    Build(String),
}

impl VenueError {
    /// Whether this says only that the CLOB did not answer (no answer in time, no connection, a
    /// 5xx, or "not now"), as opposed to a refusal of our setup: a live daemon may start while the
    /// CLOB is down, not with a wrong key or account.
    #[must_use]
    pub const fn unanswered(&self) -> bool {
        match self {
            Self::Timeout(_) | Self::Transport(_) | Self::Unconnected => true,
            Self::Status { status, .. } => *status >= 500 || *status == 429 || *status == 425,
            Self::Setup(_) | Self::Build(_) => false,
        }
    }
}

impl From<OrderError> for VenueError {
    fn from(e: OrderError) -> Self {
        Self::Build(e.to_string())
    }
}
/// Runs one SDK call within `timeout`, its error texts scrubbed of `secrets`.
pub(crate) async fn bounded<T>(
    timeout: Duration,
    secrets: &[&str],
    fut: impl Future<Output = polymarket_client_sdk_v2::Result<T>>,
) -> Result<T, VenueError> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(sdk_error(&e, secrets)),
        Err(_) => Err(VenueError::Timeout(timeout)),
    }
}

/// The SDK's error as ours, with `secrets` and every secret the process registered taken out: a
/// transport error names its URL, and a `CLOB_HOST` with a key in its path would show it.
pub(crate) fn sdk_error(e: &polymarket_client_sdk_v2::error::Error, secrets: &[&str]) -> VenueError {
    let clean = |text: &str| crate::config::env::redact(&scrub(text, secrets));
    if let Some(st) = e.downcast_ref::<Status>() {
        return VenueError::Status { status: st.status_code.as_u16(), message: clean(&st.message) };
    }
    VenueError::Transport(clean(&e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_clob_that_did_not_answer_is_unanswered() {
        let status = |status| VenueError::Status { status, message: String::new() };
        let cases = [
            (VenueError::Timeout(Duration::from_secs(5)), true),
            (VenueError::Transport("connection refused".into()), true),
            (VenueError::Unconnected, true),
            (status(503), true),
            (status(502), true),
            (status(429), true),
            (status(425), true),
            (status(401), false),
            (status(400), false),
            (status(403), false),
            (VenueError::Setup("bad key".into()), false),
            (VenueError::Build("tick".into()), false),
        ];
        for (e, want) in cases {
            assert_eq!(e.unanswered(), want, "{e:?}");
        }
    }
}
