//! The operator's own orders and market pauses, owned by the supervisor like every other order.
//!
//! A close sells our positions at market within the slippage cap, in every trading state: a halt
//! stops copies, never the operator's own exits (and a halt never closes anything by itself). Each
//! close order is journaled with its intent before it leaves and then runs the same placement as a
//! copy: exactly-once, looked up when its outcome is unknown, recovered after a crash.

use std::collections::HashMap;

use actix::{ActorFutureExt, Context, Handler, Message, ResponseActFuture, WrapFuture};
use alloy::primitives::B256;

use super::{Evaluate, RiskSupervisor};
use crate::actors::notifier::Event;
use crate::actors::store::{LastPrices, RecordClose};
use crate::domain::{OPERATOR, Price, Side, TokenId, Usdc, mul_price_ceil};
use crate::risk::Reservation;
use crate::risk::close::{
    CloseOrder, ClosePlan, CloseScope, Holding, MarketSelector, Unsold, changed_since_shown, plan_close,
};
use crate::store::PausedMarket;

/// The refusal of a confirmed close whose positions grew since they were shown.
pub const CHANGED_SINCE_SHOWN: &str =
    "positions were opened or added to since this was offered: send /close again to see them";

/// Close our positions in `scope` now.
#[derive(Debug, Message)]
#[rtype(result = "Result<CloseStarted, String>")]
pub struct Close {
    /// What to close.
    pub scope: CloseScope,
    /// Who asked (`cli`, `telegram`).
    pub by: String,
    /// The trading gate's count of halts when the operator asked: a halt after that (while the
    /// close orders are journaled, say) stops them, as it stops every order approved before it.
    pub halts_seen: u64,
    /// When the operator asked, unix ms: the orders' start, which a restart compares with the last
    /// halt asked for.
    pub asked_ms: i64,
    /// The positions the operator was shown and confirmed (Telegram's button), when the close was
    /// offered before it was asked: checked against the book as the close is planned, in the same
    /// step, so a copy booked after the operator looked is never sold on that confirmation.
    pub shown: Option<Vec<(TokenId, crate::domain::Shares)>>,
}

/// What a close sent and what it left.
#[derive(Debug, Clone, Default)]
pub struct CloseStarted {
    /// Journaled and being placed: (fill row, order).
    pub orders: Vec<(i64, CloseOrder)>,
    /// Not sold, with the reason.
    pub unsold: Vec<Unsold>,
    /// Orders that could not be journaled (so were not sent).
    pub failed: Vec<(CloseOrder, String)>,
}

/// Something the operator did by hand that changed what is copied (a market paused or resumed):
/// told to every chat and journaled as an `operator` event, as a close is.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct OperatorDid(pub String);

impl Handler<OperatorDid> for RiskSupervisor {
    type Result = ();

    fn handle(&mut self, m: OperatorDid, _: &mut Context<Self>) {
        self.notifier.do_send(Event::Operator { message: m.0 });
    }
}

/// The paused markets changed: the supervisor takes the journal's list.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct MarketPauses(pub Vec<PausedMarket>);

/// The markets the operator paused, as the supervisor checks them for every BUY.
#[derive(Debug, Clone, Default)]
pub struct Paused {
    tokens: HashMap<TokenId, String>,
    conditions: HashMap<B256, String>,
    slugs: HashMap<String, String>,
    /// Pauses by condition or slug whose market's tokens the journal knew, both outcomes, when
    /// they were made: a token not among them is not theirs, market known or not.
    whole: std::collections::HashSet<String>,
}

impl Paused {
    /// The set for `list`.
    #[must_use]
    pub fn new(list: &[PausedMarket]) -> Self {
        let mut p = Self::default();
        for m in list {
            let name = m.selector.to_string();
            match &m.selector {
                MarketSelector::Token(t) => {
                    p.tokens.insert(*t, name.clone());
                }
                MarketSelector::Condition(c) => {
                    p.conditions.insert(*c, name.clone());
                }
                MarketSelector::Slug(s) => {
                    p.slugs.insert(s.clone(), name.clone());
                }
            }
            for t in &m.tokens {
                p.tokens.entry(*t).or_insert_with(|| name.clone());
            }
            if m.tokens.len() >= 2 {
                p.whole.insert(name.clone());
            }
        }
        p
    }

    /// The pause that covers `token` (or its market), if any; also one that cannot be ruled out:
    /// a pause by condition or slug, and `market` unknown (Gamma not answering, a token too new)
    /// or without the id that pause names. The operator paused a market; not knowing which market
    /// this is is no reason to buy into it.
    #[must_use]
    pub fn covering(&self, token: &TokenId, market: Option<&crate::market::MarketRef>) -> Option<String> {
        let known = self
            .tokens
            .get(token)
            .or_else(|| market.and_then(|m| m.condition.as_ref()).and_then(|c| self.conditions.get(c)))
            .or_else(|| market.and_then(|m| m.slug.as_ref()).and_then(|s| self.slugs.get(&s.to_ascii_lowercase())));
        if let Some(name) = known {
            return Some(name.clone());
        }
        let no_condition = market.is_none_or(|m| m.condition.is_none());
        let no_slug = market.is_none_or(|m| m.slug.is_none());
        let unsure: Vec<&String> = (no_condition.then_some(&self.conditions).into_iter().flat_map(HashMap::values))
            .chain(no_slug.then_some(&self.slugs).into_iter().flat_map(HashMap::values))
            .filter(|name| !self.whole.contains(*name))
            .collect();
        unsure.into_iter().min().map(|name| {
            format!("{name}, perhaps: this token's market is not known yet, and no buy is copied while it may be a paused one")
        })
    }
}

impl RiskSupervisor {
    /// Every position we hold, with what no SELL in flight claims.
    fn holdings(&self) -> Vec<Holding> {
        self.book
            .tokens()
            .into_iter()
            .map(|t| Holding {
                token_id: t,
                held: self.book.position(&t).shares,
                sellable: self.reserved.sellable(&self.book, &t),
            })
            .collect()
    }

    /// Runs one journaled close order through the same placement as a copy, sent whatever the
    /// trading state.
    fn start_close(
        &mut self,
        ctx: &mut Context<Self>,
        (fill, intent): (crate::domain::TargetFill, crate::domain::OrderIntent),
        halts_seen: u64,
    ) {
        let m = Evaluate {
            counted_at_ms: None,
            intent,
            fill,
            label: "close".into(),
            max_trades_per_hour: None,
            min_trade_interval_s: None,
            recovered: true,
            at_start: false,
            market: None,
            journaled: None,
            booked: None,
            halts_seen: Some(halts_seen),
        };
        self.reserved.add(m.intent.fill_row, Reservation::of(&m.intent));
        self.publish_reserved();
        self.launch(ctx, m, true);
    }
}

/// True for the operator's own orders: sent in every trading state.
#[must_use]
pub fn is_operator(m: &Evaluate) -> bool {
    m.fill.wallet == OPERATOR
}

impl Handler<Close> for RiskSupervisor {
    type Result = ResponseActFuture<Self, Result<CloseStarted, String>>;

    /// Plans the close against the book and every order in flight, holds the shares, journals each
    /// order with its intent, then places them.
    fn handle(&mut self, m: Close, _: &mut Context<Self>) -> Self::Result {
        let store = self.store.clone();
        let prices = async move { store.send(LastPrices).await };
        Box::pin(prices.into_actor(self).then(move |prices, act, _| {
            let mut prices: HashMap<TokenId, Price> = match prices {
                Ok(Ok(p)) => p.into_iter().collect(),
                _ => HashMap::new(),
            };
            prices.extend(act.marks.iter().map(|(t, p)| (*t, *p)));
            let holdings = act.holdings();
            let changed = m.shown.as_ref().is_some_and(|s| changed_since_shown(&holdings, &m.scope, s));
            let plan = if changed {
                ClosePlan::default()
            } else {
                plan_close(&holdings, &m.scope, &prices, act.close_slippage_bps)
            };
            // Held while they are journaled, so a copy's SELL cannot claim the same shares.
            let mut held = Vec::new();
            for o in &plan.orders {
                act.close_nonce += 1;
                let key = -i64::try_from(act.close_nonce).unwrap_or(i64::MAX);
                let r = Reservation {
                    token: o.token_id,
                    side: Side::Sell,
                    shares: o.shares,
                    usdc: Usdc(mul_price_ceil(o.shares, o.limit)),
                    placing: true,
                };
                act.reserved.add(key, r);
                held.push(key);
            }
            let (store, nonce) = (act.store.clone(), act.close_nonce);
            let records: Vec<_> = plan
                .orders
                .iter()
                .enumerate()
                .map(|(i, o)| {
                    store.send(RecordClose { order: o.clone(), nonce: nonce + i as u64, asked_ms: m.asked_ms })
                })
                .collect();
            let (by, halts_seen) = (m.by, m.halts_seen);
            async move {
                // Tests stretch the journal's write of the close (a slow disk) to halt inside it.
                crate::fault::hold_at("hold_before_close_journaled").await;
                futures_util::future::join_all(records).await
            }
            .into_actor(act)
            .map(move |results, act, ctx| {
                if changed {
                    return Err(CHANGED_SINCE_SHOWN.into());
                }
                for k in held {
                    act.reserved.release(k);
                }
                act.publish_reserved();
                let mut started = CloseStarted { unsold: plan.unsold, ..CloseStarted::default() };
                for (o, r) in plan.orders.into_iter().zip(results) {
                    match r {
                        Ok(Ok((row, fill, intent))) => {
                            act.start_close(ctx, (fill, intent), halts_seen);
                            started.orders.push((row, o));
                        }
                        Ok(Err(e)) => started.failed.push((o, e.to_string())),
                        Err(e) => started.failed.push((o, e.to_string())),
                    }
                }
                act.notifier.do_send(Event::Operator { message: close_summary(&started, &by) });
                Ok(started)
            })
        }))
    }
}

/// One line per order and per unsold remainder, for the reply and the report.
#[must_use]
pub fn close_summary(s: &CloseStarted, by: &str) -> String {
    let token = |t: &TokenId| crate::actors::notifier::short_token(&t.to_string());
    let mut lines = vec![if s.orders.is_empty() && s.failed.is_empty() {
        format!("close by {by}: nothing to sell")
    } else {
        format!("close by {by}: {} SELL order(s) sent at market", s.orders.len())
    }];
    for (_, o) in &s.orders {
        lines.push(format!(
            "SELL {} shares of {} at ≥ {} (last price {})",
            o.shares,
            token(&o.token_id),
            o.limit,
            o.reference
        ));
    }
    for (o, e) in &s.failed {
        lines.push(format!("NOT SENT: {} shares of {}: journal write failed: {e}", o.shares, token(&o.token_id)));
    }
    for u in &s.unsold {
        lines.push(format!("left: {} shares of {}: {}", u.shares, token(&u.token_id), u.why));
    }
    lines.join("\n")
}

impl Handler<MarketPauses> for RiskSupervisor {
    type Result = ();

    /// Takes the journal's paused markets.
    fn handle(&mut self, m: MarketPauses, _: &mut Context<Self>) {
        self.paused_markets = Paused::new(&m.0);
    }
}

/// A position the journal corrected (`reconcile --apply`): the book takes it.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct BookAdjusted {
    /// The token.
    pub token: TokenId,
    /// Its position as the journal wrote it.
    pub position: crate::risk::Written,
    /// Its position as the journal had it before.
    pub before: crate::risk::Position,
    /// Who booked it and why, as reported to every chat.
    pub said: String,
}

impl Handler<BookAdjusted> for RiskSupervisor {
    type Result = ();

    fn handle(&mut self, m: BookAdjusted, _: &mut Context<Self>) {
        self.roll_day(crate::store::now_ms());
        // Shares that left or came outside polycopy: no P&L of today's trading. Measured on the
        // journal's before and after (the book may not hold the same yet), at the token's mark.
        let moved = self.unrealized_of(&m.token, m.position.position) - self.unrealized_of(&m.token, m.before);
        self.adopt(m.token, m.position);
        self.revalue();
        self.carry_into_day_open(Usdc(moved));
        self.check_daily_loss();
        self.publish();
        // The book changed by the operator's hand: said as every operator action is.
        self.notifier.do_send(Event::Operator { message: m.said });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::market::MarketRef;

    fn pause(selector: MarketSelector, tokens: &[u64]) -> PausedMarket {
        PausedMarket {
            selector,
            tokens: tokens.iter().map(|t| TokenId::from(*t)).collect(),
            since_ms: 0,
            by: "cli".into(),
        }
    }

    fn market(condition: Option<u8>, slug: Option<&str>) -> Option<MarketRef> {
        Some(MarketRef { name: "m".into(), slug: slug.map(str::to_owned), condition: condition.map(B256::repeat_byte) })
    }

    /// A BUY is refused where a pause covers it, and where one by condition or slug cannot be
    /// ruled out because its market, or the id the pause names, is not known.
    #[test]
    fn a_pause_covers_its_market_and_any_market_it_cannot_rule_out() {
        let by_token = Paused::new(&[pause(MarketSelector::Token(TokenId::from(7u8)), &[7])]);
        let by_condition = Paused::new(&[pause(MarketSelector::Condition(B256::repeat_byte(1)), &[8])]);
        let by_slug = Paused::new(&[pause(MarketSelector::Slug("will-it-rain".into()), &[])]);
        // Both of its market's tokens known when paused: any other token is not its market.
        let whole = Paused::new(&[pause(MarketSelector::Slug("will-it-rain".into()), &[5, 6])]);
        let none = Paused::new(&[]);
        // (pauses, token, its market, covered, the pause not known to cover it for sure)
        let cases = [
            (&by_token, 7, market(None, None), true, false),
            (&by_token, 9, None, false, false),
            (&by_condition, 8, None, true, false),
            (&by_condition, 9, market(Some(1), None), true, false),
            (&by_condition, 9, market(Some(2), None), false, false),
            (&by_condition, 9, None, true, true),
            (&by_condition, 9, market(None, Some("will-it-rain")), true, true),
            (&by_slug, 9, market(Some(2), Some("Will-It-Rain")), true, false),
            (&by_slug, 9, market(Some(2), Some("sunny")), false, false),
            (&by_slug, 9, market(Some(2), None), true, true),
            (&by_slug, 9, None, true, true),
            (&none, 9, None, false, false),
            (&whole, 5, None, true, false),
            (&whole, 9, None, false, false),
        ];
        for (i, (paused, token, m, covered, unsure)) in cases.into_iter().enumerate() {
            let got = paused.covering(&TokenId::from(token), m.as_ref());
            assert_eq!(got.is_some(), covered, "case {i}: {got:?}");
            assert_eq!(got.is_some_and(|g| g.contains("not known yet")), unsure, "case {i}");
        }
    }
}
