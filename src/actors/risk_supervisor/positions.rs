//! Position questions: how many shares of a token a SELL may be sized on. While a BUY of that
//! token is in flight, or its outcome unknown, the answer waits for its outcome, so a SELL right
//! after a BUY is sized on what the BUY got: sized without it, a target's exit would be refused
//! (`no_position`) and a BUY found filled later would stay open with nobody told.

use std::time::Duration;

use actix::{Context, Handler};

use super::{BuyOpen, GetPosition, Placing, RiskSupervisor};
use crate::domain::Shares;

impl Handler<GetPosition> for RiskSupervisor {
    type Result = actix::ResponseFuture<Shares>;

    /// Our shares of a token that no SELL in flight has claimed. While a BUY of that token is in
    /// flight the answer waits for its outcome (at most `POSITION_WAIT`): a SELL right after a BUY
    /// is sized on what the BUY actually got.
    fn handle(&mut self, m: GetPosition, _: &mut Context<Self>) -> Self::Result {
        let waits = if m.at_start {
            // Recovery at start is not held up by an order of unknown outcome (it may take
            // minutes to resolve); the operator is told the exit is sized without it.
            if self.unknown_buy(&m.token, true) {
                self.sized_without_buy(&m.token, "unknown at the start");
            }
            self.reserved.buying(&m.token) && !self.waited_at_start.contains(&m.token)
        } else {
            self.awaits_buy(&m.token)
        };
        if !waits {
            let shares = self.reserved.sellable(&self.book, &m.token);
            return Box::pin(async move { shares });
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let wait = if m.at_start { POSITION_WAIT_AT_START } else { POSITION_WAIT };
        self.position_waiters.push((m.token, std::time::Instant::now() + wait, m.at_start, tx));
        Box::pin(async move { rx.await.unwrap_or(Shares::ZERO) })
    }
}

impl Handler<BuyOpen> for RiskSupervisor {
    type Result = bool;

    /// A BUY of the token being placed, or of unknown outcome and still holding its exposure
    /// (waited for by a SELL already or not).
    fn handle(&mut self, BuyOpen(token): BuyOpen, _: &mut Context<Self>) -> bool {
        self.reserved.buying(&token) || self.unknown_buy(&token, false)
    }
}

impl Handler<Placing> for RiskSupervisor {
    type Result = bool;

    fn handle(&mut self, Placing(row): Placing, _: &mut Context<Self>) -> bool {
        self.reserved.holds(row)
    }
}

/// Longest a position question waits for a BUY in flight (an order whose outcome stays unknown
/// keeps its reservation; the SELL is then sized on what is booked, and the operator told). Only
/// the token's own copies wait meanwhile, and well inside the default copy delay (300 s): long
/// enough for a BUY that waited for a slot behind hanging orders and then for its resolve window.
const POSITION_WAIT: Duration = Duration::from_secs(120);

/// The same during recovery at start, which the daemon's readiness waits for: a recovered BUY of
/// the token being driven again may take its whole resolve window (a GTD order resting, a CLOB
/// answering 503), and two minutes of it passed systemd's start timeout, which killed the start
/// and looped. Past it the exit is sized without the BUY, and the operator told.
const POSITION_WAIT_AT_START: Duration = Duration::from_secs(10);

impl RiskSupervisor {
    /// Whether a SELL of `token` waits for a BUY of it: one being placed, or one whose outcome is
    /// unknown (resolved in the background or by our fill on chain), still holding its exposure
    /// and not waited for already.
    fn awaits_buy(&self, token: &crate::domain::TokenId) -> bool {
        self.reserved.buying(token) || self.unknown_buy(token, true)
    }

    /// Whether a BUY of `token` of unknown outcome (`awaited_only`: not waited for already) still
    /// holds its exposure (not only a rest kept for later parts of its match).
    fn unknown_buy(&self, token: &crate::domain::TokenId, awaited_only: bool) -> bool {
        self.unresolved
            .buys_of(token, awaited_only)
            .any(|row| self.reserved.holds(row) && !self.reserved.awaits_parts(row))
    }

    /// Tells the operator a SELL of `token` is sized without our BUY of it still in flight
    /// (`when`: how long it was waited for), once: the token's later SELLs do not wait for
    /// those BUYs again.
    fn sized_without_buy(&mut self, token: &crate::domain::TokenId, when: &str) {
        self.unresolved.stop_awaiting(token);
        let message = format!(
            "a target's SELL of token {token} is sized without our BUY of it still in flight (its outcome {when}): \
             if that BUY fills, we hold shares the target has sold. Check `polycopy status` and close them if so"
        );
        tracing::warn!("{message}");
        self.notifier.do_send(crate::actors::notifier::Event::Alert { message });
    }

    /// Answers the position questions whose token has no BUY in flight any more, or that waited long
    /// enough.
    pub(super) fn wake_position_waiters(&mut self) {
        let now = std::time::Instant::now();
        let waiters = std::mem::take(&mut self.position_waiters);
        for (token, deadline, at_start, tx) in waiters {
            let buying = if at_start {
                self.reserved.buying(&token) && !self.waited_at_start.contains(&token)
            } else {
                self.awaits_buy(&token)
            };
            if !buying || now >= deadline {
                if buying {
                    if at_start {
                        self.waited_at_start.insert(token);
                    }
                    // Sized without it: should it fill, we hold shares the target has left.
                    let waited = if at_start { POSITION_WAIT_AT_START } else { POSITION_WAIT };
                    self.sized_without_buy(&token, &format!("unknown after {} s", waited.as_secs()));
                }
                let _ = tx.send(self.reserved.sellable(&self.book, &token));
            } else {
                self.position_waiters.push((token, deadline, at_start, tx));
            }
        }
    }
}
