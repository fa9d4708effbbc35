//! What can go wrong talking to the chain, said without the endpoint's secrets.

use crate::config::redact_url;

/// Errors talking to the chain. Messages carry redacted URLs only.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The node answered with an error or the transport failed.
    #[error("rpc {endpoint}: {message}")]
    Rpc {
        /// Redacted endpoint.
        endpoint: String,
        /// What happened (scrubbed of the URL).
        message: String,
    },
    /// The call took longer than the configured timeout.
    #[error("rpc {endpoint}: timed out after {ms} ms")]
    Timeout {
        /// Redacted endpoint.
        endpoint: String,
        /// The timeout.
        ms: u64,
    },
    /// The chain changed while a range was being read; it is read again.
    #[error("chain moved while reading blocks {from}..={to}")]
    ChainMoved {
        /// Range start.
        from: u64,
        /// Range end.
        to: u64,
    },
    /// `eth_getLogs` over a range failed while the node answered for its blocks: providers refuse
    /// a range whose answer would be too large, so the feed reads it again in halves.
    #[error("reading the logs of blocks {from}..={to}: {cause}")]
    LogsRefused {
        /// Range start.
        from: u64,
        /// Range end.
        to: u64,
        /// The node's answer.
        cause: Box<ChainError>,
    },
    /// The node's answer for a range cannot be right (a log with no position, or two different
    /// logs at one position): the range is read again.
    #[error("the node's logs of blocks {from}..={to} are malformed ({why}); reading them again")]
    MalformedLogs {
        /// Range start.
        from: u64,
        /// Range end.
        to: u64,
        /// What is wrong.
        why: String,
    },
    /// The endpoint's head has not moved for longer than `chain.head_stall_s`: the node is stuck
    /// or cut off from the network, and no new fill can be seen through it.
    #[error("rpc {endpoint}: the head has stayed at block {head} for {for_s} s (stuck, or cut off from the network)")]
    HeadStuck {
        /// Redacted endpoint.
        endpoint: String,
        /// The block it keeps naming.
        head: u64,
        /// For how long, seconds.
        for_s: u64,
    },
    /// A block the node should have is missing.
    #[error("block {0} not found")]
    MissingBlock(u64),
    /// Not connected.
    #[error("not connected")]
    NotConnected,
    /// The endpoint serves another chain.
    #[error("rpc {endpoint} is on chain {got}, not {want}: check POLYGON_RPC_URL (or chain.chain_id for a test chain)")]
    WrongChain {
        /// Redacted endpoint.
        endpoint: String,
        /// What it said.
        got: u64,
        /// What the settings want.
        want: u64,
    },
    /// The journal failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The store actor is gone.
    #[error("store unavailable: {0}")]
    Mailbox(String),
}

/// An error with every cause under it: the transport's "error sending request" alone hides whether
/// DNS, the TCP connection or TLS failed, which is what the operator needs to know.
pub(crate) fn with_causes(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let c = cause.to_string();
        if !out.contains(&c) {
            out.push_str(": ");
            out.push_str(&c);
        }
        next = cause.source();
    }
    out
}

/// Removes a URL (and its path, which may hold an API key) from an error text.
pub(super) fn scrub_url(text: &str, url: &str) -> String {
    let mut out = text.replace(url, &redact_url(url));
    if let Some((_, rest)) = url.split_once("://")
        && let Some(i) = rest.find(['/', '?'])
    {
        let tail = &rest[i..];
        if tail.len() > 1 {
            out = out.replace(tail, "/…");
        }
    }
    out
}
