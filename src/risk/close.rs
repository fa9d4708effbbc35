//! Closing positions on purpose (`polycopy close`, Telegram `/close`) and pausing one market: which
//! market the operator means, and what a close sends. Pure, so each case is pinned by a table.

use std::collections::HashMap;
use std::fmt;

use alloy::primitives::B256;

use crate::domain::{LOT, Price, Shares, TokenId};
use crate::risk::sizing::limit_price;

/// A market as the operator names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MarketSelector {
    /// One outcome token (the CLOB's decimal token id).
    Token(TokenId),
    /// Every outcome of a market (its condition id, `0x` and 64 hex digits).
    Condition(B256),
    /// Every outcome of the market with this polymarket.com slug (as the journal knows it).
    Slug(String),
}

impl MarketSelector {
    /// Reads a token id, a condition id or a slug.
    ///
    /// # Errors
    /// A message saying what was expected, for anything else.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("name a market: a token id (digits), a condition id (0x and 64 hex digits) or a slug".into());
        }
        if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
            return match hex.parse::<B256>() {
                Ok(c) if hex.len() == 64 => Ok(Self::Condition(c)),
                _ => Err(format!("{s:?} is not a condition id: expected 0x and 64 hex digits")),
            };
        }
        if s.bytes().all(|b| b.is_ascii_digit()) {
            return s.parse::<TokenId>().map(Self::Token).map_err(|_| format!("{s:?} is not a token id: too large"));
        }
        let slug_ok = s.len() <= 200 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if slug_ok {
            Ok(Self::Slug(s.to_ascii_lowercase()))
        } else {
            Err(format!("{s:?} is not a token id, a condition id or a market slug (letters, digits and '-')"))
        }
    }

    /// The key the pause is journaled under: `token:<id>`, `condition:<0x…>` or `slug:<slug>`.
    #[must_use]
    pub fn key(&self) -> String {
        match self {
            Self::Token(t) => format!("token:{t}"),
            Self::Condition(c) => format!("condition:{c:#x}"),
            Self::Slug(s) => format!("slug:{s}"),
        }
    }

    /// The selector a journaled key stands for.
    #[must_use]
    pub fn from_key(key: &str) -> Option<Self> {
        let (kind, v) = key.split_once(':')?;
        match kind {
            "token" => v.parse().ok().map(Self::Token),
            "condition" => v.parse().ok().map(Self::Condition),
            "slug" => Some(Self::Slug(v.to_owned())),
            _ => None,
        }
    }
}

impl fmt::Display for MarketSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Token(t) => write!(f, "token {t}"),
            Self::Condition(c) => write!(f, "market {c:#x}"),
            Self::Slug(s) => write!(f, "market {s}"),
        }
    }
}

/// What `close` applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseScope {
    /// Every open position.
    All,
    /// The positions in these tokens (a market's outcomes, or one token).
    Tokens(Vec<TokenId>),
}

impl CloseScope {
    /// True when `token` is to be closed.
    #[must_use]
    pub fn covers(&self, token: &TokenId) -> bool {
        match self {
            Self::All => true,
            Self::Tokens(ts) => ts.contains(token),
        }
    }
}

/// The part of a position that cannot be sold (less than one lot), if any.
#[must_use]
pub const fn dust(held: Shares) -> Option<Shares> {
    if held.0 > 0 && held.0 < LOT { Some(held) } else { None }
}

/// One SELL a close sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseOrder {
    /// The token sold.
    pub token_id: TokenId,
    /// Whole lots we hold and no other SELL claimed.
    pub shares: Shares,
    /// The price the close is measured against (the last mark, else the last traded price).
    pub reference: Price,
    /// The worst price accepted: the reference less the slippage cap.
    pub limit: Price,
}

/// What a close cannot sell, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsold {
    /// The token.
    pub token_id: TokenId,
    /// Shares left behind.
    pub shares: Shares,
    /// Why.
    pub why: UnsoldReason,
}

/// Why shares stay after a close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnsoldReason {
    /// Less than one lot: the exchange cannot take it (dust).
    Dust,
    /// No price is known for the token yet, so no limit can be set.
    NoPrice,
    /// Another SELL in flight already claims these shares.
    InFlight,
}

impl fmt::Display for UnsoldReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Dust => "dust: less than one lot, the exchange cannot take it",
            Self::NoPrice => "no price known yet (no mark, no trade seen): try again after the next marks",
            Self::InFlight => "already being sold by an order in flight",
        })
    }
}

/// The orders a close sends and what stays.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClosePlan {
    /// SELLs to send.
    pub orders: Vec<CloseOrder>,
    /// What is not sold.
    pub unsold: Vec<Unsold>,
}

/// One open position as the close sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holding {
    /// The token.
    pub token_id: TokenId,
    /// Shares in the book.
    pub held: Shares,
    /// Of those, not claimed by a SELL in flight.
    pub sellable: Shares,
}

/// True when the book in `scope` holds a position the operator was not `shown` (and confirmed),
/// or more shares of one than shown: bought since, which a close planned now would sell unseen. A
/// position shown and smaller or gone since (a copied exit) is no change: less is sold, never more.
#[must_use]
pub fn changed_since_shown(holdings: &[Holding], scope: &CloseScope, shown: &[(TokenId, Shares)]) -> bool {
    holdings
        .iter()
        .filter(|h| h.held.0 > 0 && scope.covers(&h.token_id))
        .any(|h| !shown.iter().any(|(t, s)| *t == h.token_id && h.held <= *s))
}

/// Plans a close of `holdings` within `scope`: each whole lot not already being sold is sold at
/// market with a limit `slippage_bps` under its reference price; the rest is reported.
#[must_use]
pub fn plan_close(
    holdings: &[Holding],
    scope: &CloseScope,
    prices: &HashMap<TokenId, Price>,
    slippage_bps: u32,
) -> ClosePlan {
    let mut plan = ClosePlan::default();
    for h in holdings.iter().filter(|h| h.held.0 > 0 && scope.covers(&h.token_id)) {
        let whole = Shares(h.sellable.0 - h.sellable.0.rem_euclid(LOT));
        let claimed = Shares(h.held.0 - h.sellable.0.max(0));
        if claimed.0 > 0 {
            plan.unsold.push(Unsold { token_id: h.token_id, shares: claimed, why: UnsoldReason::InFlight });
        }
        let rest = Shares(h.sellable.0.max(0) - whole.0.max(0));
        if whole.0 <= 0 {
            if rest.0 > 0 {
                plan.unsold.push(Unsold { token_id: h.token_id, shares: rest, why: UnsoldReason::Dust });
            }
            continue;
        }
        let Some(reference) = prices.get(&h.token_id).copied().filter(|p| p.0 > 0) else {
            plan.unsold.push(Unsold { token_id: h.token_id, shares: h.sellable, why: UnsoldReason::NoPrice });
            continue;
        };
        let limit = limit_price(crate::domain::Side::Sell, reference, slippage_bps);
        plan.orders.push(CloseOrder { token_id: h.token_id, shares: whole, reference, limit });
        if rest.0 > 0 {
            plan.unsold.push(Unsold { token_id: h.token_id, shares: rest, why: UnsoldReason::Dust });
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ONE;

    #[test]
    fn selectors_parse_or_say_what_was_expected() {
        let cond = format!("0x{}", "ab".repeat(32));
        for (input, want) in [
            ("123456789", Ok(MarketSelector::Token(TokenId::from(123_456_789u64)))),
            (cond.as_str(), Ok(MarketSelector::Condition(cond.parse().unwrap()))),
            ("Will-It-Rain", Ok(MarketSelector::Slug("will-it-rain".into()))),
            ("", Err("name a market")),
            ("0x1234", Err("not a condition id")),
            ("drop table;", Err("not a token id, a condition id or a market slug")),
            (&"9".repeat(90), Err("too large")),
        ] {
            match (MarketSelector::parse(input), want) {
                (Ok(got), Ok(w)) => assert_eq!(got, w, "{input}"),
                (Err(e), Err(w)) => assert!(e.contains(w), "{input}: {e}"),
                (got, w) => panic!("{input}: {got:?} vs {w:?}"),
            }
        }
    }

    #[test]
    fn a_book_changed_since_the_operator_saw_it_is_told() {
        let t = TokenId::from;
        let h = |n: u64, held: i64| Holding { token_id: t(n), held: Shares(held), sellable: Shares(held) };
        let shown = [(t(1), Shares(10 * ONE)), (t(2), Shares(5 * ONE))];
        // (book, scope, changed)
        let cases: &[(Vec<Holding>, CloseScope, bool)] = &[
            (vec![h(1, 10 * ONE), h(2, 5 * ONE)], CloseScope::All, false),
            (vec![h(1, 10 * ONE)], CloseScope::All, false),
            (vec![h(1, 20 * ONE), h(2, 5 * ONE)], CloseScope::All, true),
            (vec![h(1, 10 * ONE), h(2, 5 * ONE), h(3, ONE)], CloseScope::All, true),
            (vec![h(1, 10 * ONE), h(3, ONE)], CloseScope::Tokens(vec![t(1)]), false),
            (vec![h(1, 10 * ONE), h(3, 0)], CloseScope::All, false),
            // Smaller since (a copied exit): less is sold.
            (vec![h(1, 4 * ONE)], CloseScope::All, false),
            (vec![h(1, 10 * ONE + 1)], CloseScope::All, true),
        ];
        for (i, (book, scope, want)) in cases.iter().enumerate() {
            assert_eq!(changed_since_shown(book, scope, &shown), *want, "case {i}");
        }
    }

    #[test]
    fn dust_is_a_positive_remainder_below_one_lot() {
        for (held, want) in [(0, None), (LOT / 2, Some(LOT / 2)), (LOT, None), (LOT + 1, None), (-1, None)] {
            assert_eq!(dust(Shares(held)), want.map(Shares), "{held}");
        }
    }

    #[test]
    fn keys_round_trip() {
        for s in ["42", &format!("0x{}", "cd".repeat(32)), "some-market"] {
            let sel = MarketSelector::parse(s).unwrap();
            assert_eq!(MarketSelector::from_key(&sel.key()), Some(sel));
        }
        assert_eq!(MarketSelector::from_key("nonsense"), None);
    }

    #[test]
    fn plan_sells_whole_lots_at_the_slippage_limit_and_reports_the_rest() {
        let t = |n: u64| TokenId::from(n);
        let h =
            |n, held: i64, sellable: i64| Holding { token_id: t(n), held: Shares(held), sellable: Shares(sellable) };
        let lot = LOT;
        let prices: HashMap<TokenId, Price> =
            [(t(1), Price(500_000)), (t(2), Price(400_000)), (t(4), Price(300_000))].into();
        // (holdings, scope) → (orders as (token, shares, limit), unsold as (token, shares, why))
        type Want = (Vec<(u64, i64, i64)>, Vec<(u64, i64, UnsoldReason)>);
        let cases: Vec<(Vec<Holding>, CloseScope, Want)> = vec![
            // A whole position at the 1 % limit.
            (vec![h(1, 10 * ONE, 10 * ONE)], CloseScope::All, (vec![(1, 10 * ONE, 495_000)], vec![])),
            // A fraction of a lot stays as dust beside the order.
            (
                vec![h(2, 10 * ONE + lot / 2, 10 * ONE + lot / 2)],
                CloseScope::All,
                (vec![(2, 10 * ONE, 396_000)], vec![(2, lot / 2, UnsoldReason::Dust)]),
            ),
            // Only dust: no order.
            (vec![h(1, lot / 2, lot / 2)], CloseScope::All, (vec![], vec![(1, lot / 2, UnsoldReason::Dust)])),
            // No price: reported, not guessed.
            (vec![h(3, 5 * ONE, 5 * ONE)], CloseScope::All, (vec![], vec![(3, 5 * ONE, UnsoldReason::NoPrice)])),
            // Shares a SELL in flight claims are not sold twice.
            (
                vec![h(4, 10 * ONE, 4 * ONE)],
                CloseScope::All,
                (vec![(4, 4 * ONE, 297_000)], vec![(4, 6 * ONE, UnsoldReason::InFlight)]),
            ),
            // A scope leaves other positions alone; empty positions are skipped.
            (
                vec![h(1, 10 * ONE, 10 * ONE), h(2, 3 * ONE, 3 * ONE), h(4, 0, 0)],
                CloseScope::Tokens(vec![t(2), t(4)]),
                (vec![(2, 3 * ONE, 396_000)], vec![]),
            ),
        ];
        for (holdings, scope, (orders, unsold)) in cases {
            let p = plan_close(&holdings, &scope, &prices, 100);
            let got: Vec<_> = p.orders.iter().map(|o| (o.token_id.to::<u64>(), o.shares.0, o.limit.0)).collect();
            assert_eq!(got, orders, "{holdings:?}");
            let got: Vec<_> = p.unsold.iter().map(|u| (u.token_id.to::<u64>(), u.shares.0, u.why)).collect();
            assert_eq!(got, unsold, "{holdings:?}");
        }
    }
}
