//! Closing positions and pausing markets, as every command surface asks for them (the control socket
//! for the CLI, Telegram): one implementation, so both say and do the same.

use std::time::Duration;

use actix::Addr;

use crate::actors::risk_supervisor::{Close, CloseStarted, MarketPauses, OperatorDid, RiskSupervisor};
use crate::actors::store::{PausedMarkets, SetMarketPaused, StoreActor, TokensOf};
use crate::actors::within;
use crate::domain::{Shares, TokenId};
use crate::risk::close::{CloseScope, MarketSelector};

/// Longest a close waits for the supervisor and the journal (journaling each order, not its fill).
const CLOSE_WAIT: Duration = Duration::from_secs(10);
/// Longest a lookup or a pause waits for the journal: one busy or stuck is said so, never met
/// with silence.
const JOURNAL_WAIT: Duration = Duration::from_secs(5);

/// What `market` (a token id, a condition id or a slug; `None`: everything) closes.
///
/// # Errors
/// A message for the operator: unreadable selector, unknown market, journal unavailable.
pub async fn scope(store: &Addr<StoreActor>, market: Option<&str>) -> Result<CloseScope, String> {
    let Some(m) = market else { return Ok(CloseScope::All) };
    let sel = MarketSelector::parse(m)?;
    let tokens = tokens(store, &sel).await?;
    if tokens.is_empty() {
        return Err(format!(
            "the journal knows no token of {sel}: name the token id, or check the slug or condition id"
        ));
    }
    Ok(CloseScope::Tokens(tokens))
}

async fn tokens(store: &Addr<StoreActor>, sel: &MarketSelector) -> Result<Vec<crate::domain::TokenId>, String> {
    match within(JOURNAL_WAIT, store.send(TokensOf(sel.clone()))).await {
        Ok(Ok(t)) => Ok(t),
        Ok(Err(e)) => Err(format!("the journal could not be read: {e}")),
        Err(_) => Err("the journal is unavailable right now; try again".into()),
    }
}

/// Why a close did not report its start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CloseError {
    /// Nothing was started: the reason, for the operator.
    #[error("{0}")]
    NotStarted(String),
    /// Asked, and not confirmed in time: it may still go out.
    #[error("{0}")]
    Unconfirmed(String),
}

/// Closes our positions in `market` (all when `None`) at market within the slippage cap.
/// `asked`: the trading gate's count of halts and the time (unix ms) when the operator asked, read
/// before anything is awaited: a halt after it stops the close's orders, after a restart too.
/// `shown`: the positions the operator confirmed, when the close was offered first; nothing is
/// sold if the book holds a position in scope that was not shown, or more of one than shown.
///
/// # Errors
/// A message for the operator when nothing could be started.
pub async fn close(
    (store, risk): (&Addr<StoreActor>, &Addr<RiskSupervisor>),
    market: Option<&str>,
    by: &str,
    (halts_seen, asked_ms): (u64, i64),
    shown: Option<Vec<(TokenId, Shares)>>,
) -> Result<CloseStarted, CloseError> {
    let scope = scope(store, market).await.map_err(CloseError::NotStarted)?;
    let close = Close { scope, by: by.to_owned(), halts_seen, asked_ms, shown };
    match tokio::time::timeout(CLOSE_WAIT, risk.send(close)).await {
        // A market named and nothing held there: likely a typo, not a success.
        Ok(Ok(Ok(s))) if market.is_some() && s.orders.is_empty() && s.unsold.is_empty() && s.failed.is_empty() => {
            Err(CloseError::NotStarted(format!(
                "we hold no position in {}: nothing to close (`polycopy status` lists them)",
                market.unwrap_or("")
            )))
        }
        Ok(Ok(r)) => r.map_err(CloseError::NotStarted),
        Ok(Err(_)) => Err(CloseError::NotStarted("the risk supervisor is unavailable".into())),
        // Still queued or being journaled: its orders may still go out.
        Err(_) => Err(CloseError::Unconfirmed(format!(
            "the close was asked but not confirmed within {} s, and may still go out: check the positions and \
             trades before asking again",
            CLOSE_WAIT.as_secs()
        ))),
    }
}

/// Pauses (or lifts the pause of) a market; the supervisor takes the journal's list at once.
/// Returns what was done, in words.
///
/// # Errors
/// A message for the operator: unreadable selector, journal unavailable.
pub async fn set_paused(
    store: &Addr<StoreActor>,
    risk: &Addr<RiskSupervisor>,
    market: &str,
    paused: bool,
    by: &str,
) -> Result<String, String> {
    let sel = MarketSelector::parse(market)?;
    let tokens = tokens(store, &sel).await?;
    let req = SetMarketPaused { selector: sel.clone(), tokens: tokens.clone(), paused, by: by.to_owned() };
    // Journaled and handed to the supervisor by a task of its own, with no time limit: a journal
    // slower than the reply's wait still gets the pause both written and enforced, never written
    // alone (the supervisor learns pauses only from this, or at a start).
    let apply = actix::spawn(apply_pause(store.clone(), risk.clone(), req));
    match tokio::time::timeout(JOURNAL_WAIT, apply).await {
        Ok(Ok(Ok(changed))) => Ok(paused_text(&sel, tokens.len(), paused, changed)),
        Ok(Ok(Err(e))) => Err(e),
        Ok(Err(_)) => Err("the pause could not be carried out (its task failed); try again".into()),
        Err(_) => Err(format!(
            "not confirmed within {} s: the journal is busy; the pause is carried out once it answers (`polycopy \
             status` shows the paused markets)",
            JOURNAL_WAIT.as_secs()
        )),
    }
}

/// Journals `req`, then gives the supervisor the journal's list of paused markets and reports a
/// change. Whether the pause changed anything, or why it could not be written.
async fn apply_pause(
    store: Addr<StoreActor>,
    risk: Addr<RiskSupervisor>,
    req: SetMarketPaused,
) -> Result<bool, String> {
    let (sel, paused, by) = (req.selector.clone(), req.paused, req.by.clone());
    let what = if paused { "paused (no buys, exits copied)" } else { "resumed (buys copied again)" };
    let result = write_and_hand_over(&store, &risk, req).await;
    match &result {
        Ok(true) => risk.do_send(OperatorDid(format!("market {sel} {what} by {by}"))),
        Ok(false) => {}
        // Also when the reply has already gone (a journal slower than its wait): told, never lost.
        Err(e) => {
            tracing::error!(market = %sel, cause = %e, "a market pause was not carried out");
            risk.do_send(OperatorDid(format!("market {sel} NOT {what} (asked by {by}): {e}")));
        }
    }
    result
}

/// The journal's write of `req`, then the supervisor given the journal's list.
async fn write_and_hand_over(
    store: &Addr<StoreActor>,
    risk: &Addr<RiskSupervisor>,
    req: SetMarketPaused,
) -> Result<bool, String> {
    let changed = match store.send(req).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return Err(format!("the journal could not be written: {e}")),
        Err(_) => return Err("the journal is unavailable right now; try again".into()),
    };
    match store.send(PausedMarkets).await {
        Ok(Ok(list)) => risk.do_send(MarketPauses(list)),
        // Journaled and not yet enforced: said, not hidden behind a reply that says it applies.
        _ => {
            return Err("the pause is journaled, but the paused markets could not be read back: it applies at \
                        the next start (restart the daemon to enforce it now)"
                .into());
        }
    }
    Ok(changed)
}

/// The answer to a pause or resume of a market.
#[must_use]
pub fn paused_text(sel: &MarketSelector, known_tokens: usize, paused: bool, changed: bool) -> String {
    match (paused, changed) {
        (true, true) => format!(
            "paused {sel}: buys into it are refused, exits are still copied ({known_tokens} token(s) known); \
             lift the pause with `polycopy resume-market` or /resumemarket"
        ),
        (true, false) => format!("{sel} was already paused"),
        (false, true) => format!("{sel}: buys are copied again (exits always were)"),
        (false, false) => format!("{sel} was not paused"),
    }
}

/// The close's reply for people.
#[must_use]
pub fn close_text(s: &CloseStarted, by: &str) -> String {
    let mut t = crate::actors::risk_supervisor::close_summary(s, by);
    if !s.orders.is_empty() {
        t.push_str("\neach order's outcome is reported as it is known (`polycopy trades`, Telegram)");
    }
    t
}
