//! Position questions: how many shares of a token a SELL may be sized on. While a BUY of that
//! token is in flight, or its outcome unknown, the answer waits for its outcome, so a SELL right
//! after a BUY is sized on what the BUY got: sized without it, a target's exit would be refused
//! (`no_position`) and a BUY found filled later would stay open with nobody told.

use std::time::Duration;

use actix::{Context, Handler};

use super::{GetPosition, RiskSupervisor};
use crate::domain::Shares;

impl Handler<GetPosition> for RiskSupervisor {
    type Result = actix::ResponseFuture<Shares>;

    /// Our shares of a token that no SELL in flight has claimed. While a BUY of that token is in
    /// flight the answer waits for its outcome (at most `POSITION_WAIT`): a SELL right after a BUY
    /// is sized on what the BUY actually got.
    fn handle(&mut self, m: GetPosition, _: &mut Context<Self>) -> Self::Result {
        if !self.awaits_buy(&m.0) {
            let shares = self.reserved.sellable(&self.book, &m.0);
            return Box::pin(async move { shares });
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.position_waiters.push((m.0, std::time::Instant::now() + POSITION_WAIT, tx));
        Box::pin(async move { rx.await.unwrap_or(Shares::ZERO) })
    }
}

/// Longest a position question waits for a BUY in flight (an order whose outcome stays unknown
/// keeps its reservation; the SELL is then sized on what is booked, and the operator told). Only
/// the token's own copies wait meanwhile, and well inside the default copy delay (300 s): long
/// enough for a BUY that waited for a slot behind hanging orders and then for its resolve window.
const POSITION_WAIT: Duration = Duration::from_secs(120);

impl RiskSupervisor {
    /// Whether a SELL of `token` waits for a BUY of it: one being placed, or one whose outcome is
    /// unknown (resolved in the background or by our fill on chain), still holding its exposure
    /// and not waited for already.
    fn awaits_buy(&self, token: &crate::domain::TokenId) -> bool {
        self.reserved.buying(token)
            || self
                .unresolved
                .buys_awaited(token)
                .any(|row| self.reserved.holds(row) && !self.reserved.awaits_parts(row))
    }

    /// Answers the position questions whose token has no BUY in flight any more, or that waited long
    /// enough.
    pub(super) fn wake_position_waiters(&mut self) {
        let now = std::time::Instant::now();
        let waiters = std::mem::take(&mut self.position_waiters);
        for (token, deadline, tx) in waiters {
            let buying = self.awaits_buy(&token);
            if !buying || now >= deadline {
                if buying {
                    // Said once: the token's later SELLs do not wait for these BUYs again.
                    self.unresolved.stop_awaiting(&token);
                    // Sized without it: should it fill, we hold shares the target has left.
                    let message = format!(
                        "a target's SELL of token {token} is sized without our BUY of it still in flight (its \
                         outcome unknown after {} s): if that BUY fills, we hold shares the target has sold. Check \
                         `polycopy status` and close them if so",
                        POSITION_WAIT.as_secs()
                    );
                    tracing::warn!("{message}");
                    self.notifier.do_send(crate::actors::notifier::Event::Alert { message });
                }
                let _ = tx.send(self.reserved.sellable(&self.book, &token));
            } else {
                self.position_waiters.push((token, deadline, tx));
            }
        }
    }
}
