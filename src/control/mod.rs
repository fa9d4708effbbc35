//! The control socket: how `polycopy halt` and `resume` reach the daemon that trades on a journal,
//! and learn within a second whether it obeyed.
//!
//! One Unix socket per journal (`<journal>.sock` by default), one JSON line each way. The socket is
//! the daemon's identity on that journal: a command that finds nobody listening knows no daemon
//! trades there, says so, and persists its change in the journal for the next start.

pub mod client;
pub mod market_ops;
pub mod server;
pub mod starting;

use serde::{Deserialize, Serialize};

use crate::risk::BreakerState;

/// Longest request line accepted.
pub const MAX_LINE: usize = 4096;
/// Longest reply line accepted (a close lists every order it sent).
pub const MAX_REPLY: usize = 1 << 20;

/// Characters of a halt's reason kept: a request longer than the control socket reads
/// ([`MAX_LINE`]) would be refused as unreadable, and the halt not carried out; and every
/// rejection while halted quotes it, in messages Telegram caps at 4,096 characters.
pub const HALT_REASON_CHARS: usize = 500;

/// What a halt's reply adds about the orders already on their way to the exchange when it came
/// (their POST past the gate, not answered yet): a halt stops what is not sent, it does not recall
/// what is. Empty when there are none.
#[must_use]
pub fn under_way_note(posts: u64) -> String {
    match posts {
        0 => String::new(),
        1 => "; 1 order was already on its way to the exchange and is not recalled: its outcome follows".into(),
        n => format!(
            "; {n} orders were already on their way to the exchange and are not recalled: their outcomes follow"
        ),
    }
}

/// A halt's reason as stored and told, wherever it was typed: secrets out, control and invisible
/// characters (a newline forging a line of the log or of a message, a direction override) as
/// spaces, cut to [`HALT_REASON_CHARS`] with a mark.
#[must_use]
pub fn halt_reason(reason: &str) -> String {
    let spaced: String = crate::config::env::redact(reason)
        .chars()
        .map(|c| if crate::domain::is_hidden_or_control(c) { ' ' } else { c })
        .collect();
    // A zero-width joiner left alone (outside an emoji) goes too.
    let clean = crate::domain::shown_plainly(&spaced);
    if clean.chars().count() <= HALT_REASON_CHARS {
        return clean;
    }
    let mut cut: String = clean.chars().take(HALT_REASON_CHARS).collect();
    cut.push_str(" …(cut)");
    cut
}

/// What a command asks the daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    /// Stop sending orders now.
    Halt {
        /// Why, for the record.
        reason: String,
        /// Who asked (`cli`, ...).
        by: String,
    },
    /// Trade again.
    Resume {
        /// Who asked.
        by: String,
    },
    /// Who are you and what is your state.
    Status,
    /// Sell our positions at market within the slippage cap, in any trading state.
    Close {
        /// A token id, a condition id or a slug; `None`: every position.
        market: Option<String>,
        /// Who asked.
        by: String,
    },
    /// Set our position in a token to what the chain holds (`reconcile --apply`): booked, not traded.
    Adjust {
        /// The token id (decimal).
        token: String,
        /// The shares the chain holds, micro-shares.
        shares: i64,
        /// The journal's shares reconcile compared with the chain: refused when the position is
        /// no longer that. Absent (an older CLI): set whatever it is.
        #[serde(default)]
        compared: Option<i64>,
        /// An increase comes in at this price, micro-USDC per share.
        price: i64,
        /// The reconcile cause.
        cause: String,
        /// Who asked.
        by: String,
        /// The funder whose chain balances reconcile compared with (`0x…`): refused by a daemon
        /// trading for another (its key or funder changed since it started, or the command saw
        /// another environment). Absent (an older CLI): not checked.
        #[serde(default)]
        funder: Option<String>,
    },
    /// Pause a market (no buys into it) or lift its pause.
    PauseMarket {
        /// A token id, a condition id or a slug.
        market: String,
        /// Pause (true) or lift (false).
        paused: bool,
        /// Who asked.
        by: String,
    },
}

/// The daemon's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// True when the request was carried out.
    pub ok: bool,
    /// What happened, for people.
    pub message: String,
    /// The daemon's process id.
    pub pid: u32,
    /// `paper` or `live`.
    pub mode: String,
    /// The journal it trades on.
    pub journal: String,
    /// True while nothing may be sent.
    pub halted: bool,
    /// The breaker as the daemon holds it after the request.
    pub breaker: BreakerState,
    /// Journal rows of the orders a close sent (their outcomes can be followed there).
    #[serde(default)]
    pub rows: Vec<i64>,
    /// Where the daemon's HTTP server listens, when it runs one.
    #[serde(default)]
    pub http: Option<String>,
    /// Orders in flight or of unknown outcome, and the pUSD their BUYs hold against the caps.
    #[serde(default)]
    pub in_flight: Option<InFlight>,
}

/// What orders in flight hold, as the daemon last published it (read without asking the risk
/// supervisor, which may be busy).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InFlight {
    /// Orders in flight or of unknown outcome.
    pub orders: u64,
    /// pUSD their BUYs hold against the caps (at their limits, less what filled).
    pub reserved_usdc: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_halts_reason_is_one_bounded_line() {
        // (typed, kept)
        let long = "y".repeat(HALT_REASON_CHARS + 10);
        let cases = [
            ("checking the logs", "checking the logs".to_owned()),
            ("two\nlines\tand\u{1b}[31m", "two lines and [31m".to_owned()),
            ("by \u{202e}nimda", "by  nimda".to_owned()),
            (long.as_str(), format!("{} …(cut)", "y".repeat(HALT_REASON_CHARS))),
        ];
        for (typed, kept) in cases {
            assert_eq!(halt_reason(typed), kept, "{typed:?}");
        }
    }
}
