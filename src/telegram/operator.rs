//! `/close` (with a confirmation button), `/pausemarket` and `/resumemarket`: the same actions as
//! `polycopy close` and `pause-market`, carried out by the same code (`control::market_ops`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::actors::risk_supervisor::CHANGED_SINCE_SHOWN;
use crate::actors::store::GetStatus;
use crate::control::market_ops;
use crate::domain::{Shares, TokenId};
use crate::risk::close::CloseScope;
use crate::store::now_ms;
use crate::telegram::replies::answered;

/// The close confirmation button: `close:<nonce>`; the request it confirms is kept here (a token
/// id does not fit in a button's 64 bytes).
pub const CLOSE_PREFIX: &str = "close:";
/// A close button older than this is refused: positions and prices move.
const CLOSE_TTL_MS: i64 = 2 * 60 * 1000;

/// A close offered and not yet confirmed.
#[derive(Debug, Clone)]
struct Offered {
    /// The market, or `None` for all.
    market: Option<String>,
    /// The positions the offer listed (token, shares as shown): a confirmation never sells one it
    /// did not show, nor more of one than it showed.
    tokens: Vec<(TokenId, Shares)>,
    /// When it was offered, unix ms.
    at_ms: i64,
}

/// Closes offered and not yet confirmed, by nonce.
#[derive(Debug, Clone, Default)]
pub struct PendingCloses(Arc<Mutex<HashMap<u64, Offered>>>);

impl PendingCloses {
    fn offer(&self, market: Option<String>, tokens: Vec<(TokenId, Shares)>) -> u64 {
        let nonce = rand_nonce();
        if let Ok(mut m) = self.0.lock() {
            m.retain(|_, o| now_ms() - o.at_ms <= CLOSE_TTL_MS);
            m.insert(nonce, Offered { market, tokens, at_ms: now_ms() });
        }
        nonce
    }

    fn take(&self, nonce: u64) -> Option<Offered> {
        self.0.lock().ok()?.remove(&nonce)
    }

    /// Gives a taken offer back: its press could not be checked (the journal busy for a moment)
    /// and nothing was done, so the same button may be pressed again, as the reply says.
    fn put_back(&self, nonce: u64, offered: Offered) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(nonce, offered);
        }
    }
}

/// The open positions `scope` covers, by token id, as the journal has them.
async fn covered(ops: &super::commands::Ops, scope: &CloseScope) -> Result<Vec<crate::store::PositionRow>, String> {
    let Ok(Ok(st)) = answered(ops.store.send(GetStatus)).await else {
        return Err("the journal is unavailable right now; try again".into());
    };
    Ok(st.positions.into_iter().filter(|p| p.token_id.parse().is_ok_and(|t| scope.covers(&t))).collect())
}

/// A journal's position as the operator is shown it: token and shares, exact.
fn as_shown(p: &crate::store::PositionRow) -> Option<(TokenId, Shares)> {
    let shares = p.shares.parse::<rust_decimal::Decimal>().ok().and_then(Shares::from_decimal)?;
    Some((p.token_id.parse().ok()?, shares))
}

fn rand_nonce() -> u64 {
    // Only the authorized chats' buttons are ever read, so the nonce need only be unique.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    u64::try_from(now_ms()).unwrap_or(0).wrapping_mul(1000).wrapping_add(n)
}

/// `/close <market|all>`: says what would be sold and offers the confirmation button.
pub async fn offer_close(ops: &super::commands::Ops, arg: &str) -> (String, Vec<(String, String)>) {
    let arg = arg.trim();
    if arg.is_empty() {
        return ("usage: /close <token id|condition id|slug> or /close all".into(), Vec::new());
    }
    let market = (!arg.eq_ignore_ascii_case("all")).then(|| arg.to_owned());
    let scope = match market_ops::scope(&ops.store, market.as_deref()).await {
        Ok(s) => s,
        Err(e) => return (e, Vec::new()),
    };
    let positions = match covered(ops, &scope).await {
        Ok(p) => p,
        Err(e) => return (e, Vec::new()),
    };
    let held: Vec<String> = positions
        .iter()
        .map(|p| {
            format!(
                "• {} sh of {} (cost {} USDC)",
                p.shares,
                crate::actors::notifier::short_token(&p.token_id),
                p.cost_usdc
            )
        })
        .collect();
    if held.is_empty() {
        return ("no open position to close there".into(), Vec::new());
    }
    // Named: instances of both modes may post into one chat, and their buttons look alike.
    let mode = ops.mode_word();
    let what = if scope == CloseScope::All {
        format!("ALL {mode} open positions")
    } else {
        format!("{mode} positions in {arg}")
    };
    // As the journal spells them; one it could not read is left out, so the book holding it refuses
    // the confirmation (never sells it unseen).
    let shown = positions.iter().filter_map(as_shown).collect();
    let nonce = ops.closes.offer(market, shown);
    (
        format!(
            "close {what} at market (limit: last price less the slippage cap), whatever the trading state?\n{}",
            held.join("\n")
        ),
        vec![(format!("Close {} {mode} position(s)", held.len()), format!("{CLOSE_PREFIX}{nonce}"))],
    )
}

/// A pressed close button: carries out the close it was offered for, once.
pub async fn confirm_close(ops: &super::commands::Ops, nonce: &str) -> super::commands::Pressed {
    use super::commands::Pressed::{Done, Refused};
    // The moment of the press: a halt after it stops the close, however long its checks take.
    let asked = (ops.gate.halts(), now_ms());
    let Some((nonce, offered)) = nonce.parse::<u64>().ok().and_then(|n| Some((n, ops.closes.take(n)?))) else {
        return Refused("this button was already used or is unknown: send /close again".into());
    };
    if now_ms() - offered.at_ms > CLOSE_TTL_MS {
        return Refused("this button has expired (prices move): send /close again".into());
    }
    // Bought since the offer: the operator never saw it listed, so it is not sold on this press. The
    // supervisor checks again against its book as it plans the close (a copy booked meanwhile);
    // this first look at the journal only answers sooner.
    let now = match market_ops::scope(&ops.store, offered.market.as_deref()).await {
        Ok(scope) => covered(ops, &scope).await,
        Err(e) => Err(e),
    };
    match now {
        Ok(now)
            if now.iter().any(|p| {
                as_shown(p).is_none_or(|(t, s)| !offered.tokens.iter().any(|(ot, os)| *ot == t && s <= *os))
            }) =>
        {
            return Refused(CHANGED_SINCE_SHOWN.into());
        }
        Ok(_) => {}
        Err(e) => {
            ops.closes.put_back(nonce, offered);
            return Refused(format!("not closed: {e}"));
        }
    }
    // Tests stretch the time between the press and the close (a copy booked in it).
    crate::fault::hold_at("hold_before_close_asked").await;
    let shown = Some(offered.tokens);
    match market_ops::close((&ops.store, &ops.risk), offered.market.as_deref(), "telegram", asked, shown).await {
        // The close itself is reported to every chat (the operator event); this chat only needs to
        // know its press was taken.
        Ok(s) => Done(format!(
            "close started: {} order(s) sent; each outcome is reported here as it is known",
            s.orders.len()
        )),
        Err(e @ market_ops::CloseError::Unconfirmed(_)) => Refused(format!("outcome unknown: {e} (/positions)")),
        Err(e) => Refused(format!("not closed: {e}")),
    }
}

/// `/pausemarket` and `/resumemarket`.
pub async fn set_paused(ops: &super::commands::Ops, arg: &str, paused: bool) -> String {
    if arg.trim().is_empty() {
        return "usage: /pausemarket <token id|condition id|slug> or /resumemarket <same>".into();
    }
    match market_ops::set_paused(&ops.store, &ops.risk, arg.trim(), paused, "telegram").await {
        Ok(m) => m,
        Err(e) => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A press taken once is gone; one whose check could not run is given back, and the same
    /// button works once more.
    #[test]
    fn a_close_offer_is_taken_once_unless_given_back() {
        let closes = PendingCloses::default();
        let nonce = closes.offer(None, vec![(TokenId::from(7u64), Shares(10))]);
        let offered = closes.take(nonce).expect("offered");
        assert!(closes.take(nonce).is_none(), "taken once");
        closes.put_back(nonce, offered);
        let again = closes.take(nonce).expect("given back");
        assert_eq!(again.tokens, vec![(TokenId::from(7u64), Shares(10))]);
        assert!(closes.take(nonce).is_none());
    }
}
