//! What a token is: its market's question, its outcome, the trading rules and whether (and how) it
//! resolved, read from a Gamma API market. Pure, so every shape Gamma sends is pinned by a test.

use alloy::primitives::{B256, U256};
use polymarket_client_sdk_v2::gamma::types::response::Market;
use rust_decimal::Decimal;

use crate::chain::rpc::ConditionResult;
use crate::clob::TickSize;
use crate::clob::venue::decimal_to_micros;
use crate::domain::{ONE, Price, Shares, TokenId};

/// One outcome token of a market.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarketInfo {
    /// The token.
    pub token_id: TokenId,
    /// The market's condition id.
    pub condition_id: Option<B256>,
    /// The market's question.
    pub question: String,
    /// This token's outcome ("Yes", "Trump", ...).
    pub outcome: String,
    /// Traded on the NegRisk exchange.
    pub neg_risk: bool,
    /// Price increment.
    pub tick: Option<TickSize>,
    /// Smallest order, shares.
    pub min_size: Shares,
    /// No longer trading.
    pub closed: bool,
    /// When the market ends, unix ms.
    pub end_ms: Option<i64>,
    /// What one share pays out once the market resolved: 1 or 0 from Gamma's prices, checked
    /// against Conditional Tokens by the marking loop ([`check_payout`]), or an even split (0.5
    /// each) read there ([`even_payout`]).
    pub payout: Option<Price>,
    /// The market's slug on polymarket.com (its page), when Gamma gave one.
    pub slug: Option<String>,
}

/// A market as messages name it: "question — outcome", and its page when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarketRef {
    /// "question — outcome".
    pub name: String,
    /// The slug of its page on polymarket.com.
    pub slug: Option<String>,
    /// The market's condition id (what a market pause names).
    pub condition: Option<B256>,
}

impl std::fmt::Display for MarketRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

impl MarketRef {
    /// Its page on polymarket.com, when the slug is known and safe to put in a link.
    #[must_use]
    pub fn url(&self) -> Option<String> {
        self.slug
            .as_ref()
            .filter(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .map(|s| format!("https://polymarket.com/market/{s}"))
    }
}

impl MarketInfo {
    /// "question — outcome", for people.
    #[must_use]
    pub fn name(&self) -> String {
        format!("{} — {}", self.question, self.outcome)
    }

    /// How messages name it.
    #[must_use]
    pub fn reference(&self) -> MarketRef {
        MarketRef { name: self.name(), slug: self.slug.clone(), condition: self.condition_id }
    }

    /// Minutes until the market ends (negative once past), if its end is known.
    #[must_use]
    pub fn minutes_to_end(&self, now_ms: i64) -> Option<i64> {
        self.end_ms.map(|e| (e - now_ms).div_euclid(60_000))
    }
}

/// A fresh answer about a token, with what an earlier one said and this one lacks: the facts that
/// do not change once known (the condition, the exchange it trades on, its tick, end and slug).
/// A market on the neg-risk exchange stays there; the payout is always the fresh answer's.
#[must_use]
pub fn keep_known(fresh: MarketInfo, known: &MarketInfo) -> MarketInfo {
    MarketInfo {
        condition_id: fresh.condition_id.or(known.condition_id),
        neg_risk: fresh.neg_risk || known.neg_risk,
        tick: fresh.tick.or(known.tick),
        end_ms: fresh.end_ms.or(known.end_ms),
        slug: fresh.slug.or_else(|| known.slug.clone()),
        ..fresh
    }
}

/// When Gamma says market `m` closed (its `closedTime`, given as "2024-11-06 05:12:27+00" or as
/// RFC 3339), unix ms: when a resolved market stopped trading, often hours away from the end
/// date it announced. `None` when absent or unreadable.
#[must_use]
pub fn closed_at_ms(m: &Market) -> Option<i64> {
    let s = m.closed_time.as_deref()?.trim();
    chrono::DateTime::parse_from_rfc3339(s)
        .or_else(|_| chrono::DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%#z"))
        .or_else(|_| chrono::DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f%#z"))
        .ok()
        .map(|t| t.timestamp_millis())
}

/// The entry for `token` in a Gamma market, if the market lists it.
#[must_use]
pub fn from_gamma(m: &Market, token: TokenId) -> Option<MarketInfo> {
    let i = m.clob_token_ids.as_ref()?.iter().position(|t| *t == token)?;
    // Names shown to the operator (reports, Telegram, status) without what would hide or reorder
    // text or forge a line: a market's title is anyone's to write.
    let outcome = m
        .outcomes
        .as_ref()
        .and_then(|o| o.get(i))
        .map_or_else(|| format!("outcome {i}"), |o| crate::domain::shown_plainly(o));
    let closed = m.closed.unwrap_or(false);
    // A closed market whose price for this outcome is exactly 0 or 1 has resolved.
    let payout = m
        .outcome_prices
        .as_ref()
        .and_then(|p| p.get(i))
        .filter(|p| closed && (**p == Decimal::ONE || p.is_zero()))
        .map(|p| if p.is_zero() { Price(0) } else { Price(ONE) });
    Some(MarketInfo {
        token_id: token,
        condition_id: m.condition_id,
        question: m.question.as_deref().map(crate::domain::shown_plainly).unwrap_or_default(),
        outcome,
        neg_risk: m.neg_risk.unwrap_or(false),
        tick: m.order_price_min_tick_size.and_then(decimal_to_micros).and_then(TickSize::from_micros),
        min_size: Shares(m.order_min_size.and_then(decimal_to_micros).unwrap_or(0)),
        closed,
        end_ms: m.end_date.map(|d| d.timestamp_millis()),
        payout,
        slug: m.slug.clone(),
    })
}

/// What each outcome pays when a condition resolved evenly: every numerator the same and not 0,
/// as Polymarket's oracle reports an "unknown" (50-50) result (docs/PROTOCOL.md §9). `None` for
/// any other result, or none yet: a 1/0 result is taken from Gamma, which names the winner, so no
/// outcome's slot has to be guessed from its token.
#[must_use]
pub fn even_payout(r: &ConditionResult) -> Option<Price> {
    let first = *r.numerators.first()?;
    let outcomes = U256::from(r.numerators.len());
    // Conditional Tokens' denominator is the numerators' sum: anything else is not a result we know.
    if first.is_zero() || r.numerators.iter().any(|n| *n != first) || first.checked_mul(outcomes) != Some(r.denominator)
    {
        return None;
    }
    let outcomes = i64::try_from(r.numerators.len()).ok()?;
    Some(Price(ONE / outcomes))
}

/// What outcome slot `index` pays by the result on chain (`None` before the report, or for a
/// result Conditional Tokens cannot hold): its numerator over the denominator.
#[must_use]
pub fn slot_payout(r: &ConditionResult, index: Option<usize>) -> Option<Price> {
    if r.denominator.is_zero() {
        return None;
    }
    let sum = r.numerators.iter().try_fold(U256::ZERO, |a, n| a.checked_add(*n));
    if sum != Some(r.denominator) {
        return None;
    }
    let n = index.and_then(|i| r.numerators.get(i))?;
    // A numerator is at most the denominator, so this is at most one unit.
    Some(Price(i64::try_from(n.saturating_mul(U256::from(ONE)) / r.denominator).unwrap_or(ONE)))
}

/// What a closed market's outcome pays once Gamma and Conditional Tokens are both heard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayoutCheck {
    /// Settle at this payout.
    Settle(Price),
    /// Nothing to settle yet: no result, or Conditional Tokens has none yet.
    Wait,
    /// Gamma and Conditional Tokens name different payouts: held until they agree.
    Disagree {
        /// What Gamma's prices say.
        gamma: Price,
        /// What the chain's numerators say.
        chain: Price,
    },
}

/// The payout a closed market is journaled with after a refresh: the check's; or, when its result
/// could not be read on chain this time, the one the journal holds (checked on chain when it was
/// stored, and a reported result never changes), so a failed read never un-resolves a market the
/// redeemer and reconcile already count as resolved.
#[must_use]
pub const fn journaled_payout(checked: Option<Price>, read_failed: bool, known: Option<Price>) -> Option<Price> {
    match (checked, read_failed) {
        (Some(p), _) => Some(p),
        (None, true) => known,
        (None, false) => None,
    }
}

/// Gamma's payout for outcome slot `index` of a closed market, checked against the result on
/// chain (`None`: there is no chain to read it on): Gamma can show a result before the oracle's report
/// reaches Conditional Tokens, and a disputed one can change. A CTF market whose result is not on
/// chain yet waits; one never prepared there (another generation's) and a result that is not
/// one Conditional Tokens can hold keep Gamma's word. A market closed with no 0/1 price settles
/// only at an even result ([`even_payout`]).
#[must_use]
pub fn check_payout(gamma: Option<Price>, chain: Option<&ConditionResult>, index: Option<usize>) -> PayoutCheck {
    let gammas = gamma.map_or(PayoutCheck::Wait, PayoutCheck::Settle);
    let Some(r) = chain else { return gammas };
    if r.denominator.is_zero() {
        return if r.prepared { PayoutCheck::Wait } else { gammas };
    }
    let sum = r.numerators.iter().try_fold(U256::ZERO, |a, n| a.checked_add(*n));
    if sum != Some(r.denominator) {
        return gammas;
    }
    let Some(g) = gamma else { return even_payout(r).map_or(PayoutCheck::Wait, PayoutCheck::Settle) };
    let Some(chain) = slot_payout(r, index) else { return gammas };
    if chain == g { PayoutCheck::Settle(g) } else { PayoutCheck::Disagree { gamma: g, chain } }
}

#[cfg(test)]
mod check_payout_tests {
    use super::*;

    #[test]
    fn a_slot_pays_its_share_of_the_result_on_chain() {
        let r = |den: u64, nums: &[u64]| ConditionResult {
            denominator: U256::from(den),
            numerators: nums.iter().map(|n| U256::from(*n)).collect(),
            prepared: true,
        };
        // (result, slot, pays)
        let cases = [
            (r(1, &[1, 0]), Some(0), Some(Price(ONE))),
            (r(1, &[1, 0]), Some(1), Some(Price(0))),
            (r(10, &[7, 3]), Some(0), Some(Price(700_000))),
            (r(0, &[]), Some(0), None),
            (r(5, &[1, 1]), Some(0), None),
            (r(1, &[1, 0]), None, None),
        ];
        for (res, slot, pays) in cases {
            assert_eq!(slot_payout(&res, slot), pays, "{res:?} {slot:?}");
        }
    }

    #[test]
    fn gammas_result_settles_only_when_the_chain_agrees_or_cannot_say() {
        let r = |den: u64, nums: &[u64], prepared: bool| ConditionResult {
            denominator: U256::from(den),
            numerators: nums.iter().map(|n| U256::from(*n)).collect(),
            prepared,
        };
        let (won, lost, half) = (Some(Price(ONE)), Some(Price(0)), Price(ONE / 2));
        use PayoutCheck::{Disagree, Settle, Wait};
        // (Gamma, chain, slot, expected)
        let cases = [
            (won, Some(r(1, &[1, 0], true)), Some(0), Settle(Price(ONE))),
            (lost, Some(r(1, &[1, 0], true)), Some(1), Settle(Price(0))),
            // The dispute went the other way: held, both named.
            (won, Some(r(1, &[0, 1], true)), Some(0), Disagree { gamma: Price(ONE), chain: Price(0) }),
            (lost, Some(r(2, &[1, 1], true)), Some(1), Disagree { gamma: Price(0), chain: half }),
            // Gamma ahead of the oracle's report: wait.
            (won, Some(r(0, &[], true)), Some(0), Wait),
            // Never prepared in Conditional Tokens (an Exchange V3 market): Gamma's word.
            (won, Some(r(0, &[], false)), Some(0), Settle(Price(ONE))),
            // No chain to read, or an answer no Conditional Tokens gives: Gamma's word.
            (won, None, Some(0), Settle(Price(ONE))),
            (won, Some(r(1, &[0, 0], true)), Some(0), Settle(Price(ONE))),
            (won, Some(r(1, &[1, 0], true)), None, Settle(Price(ONE))),
            // Closed with no 0/1 price: only an even result on chain settles it.
            (None, Some(r(2, &[1, 1], true)), Some(0), Settle(half)),
            (None, Some(r(1, &[1, 0], true)), Some(0), Wait),
            (None, None, Some(0), Wait),
        ];
        for (gamma, chain, index, want) in cases {
            assert_eq!(check_payout(gamma, chain.as_ref(), index), want, "{gamma:?} {chain:?} {index:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_failed_read_keeps_the_payout_the_journal_holds_and_nothing_else_does() {
        use super::{Price, journaled_payout};
        let (one, zero) = (Some(Price(1_000_000)), Some(Price(0)));
        // (checked now, read failed, journal's) → journaled
        for (checked, failed, known, want) in [
            (one, false, None, one),
            (None, true, one, one),
            (None, true, zero, zero),
            (None, true, None, None),
            // Read, and the chain says wait (a dispute): what the journal held is not kept.
            (None, false, one, None),
            (zero, false, one, zero),
        ] {
            assert_eq!(journaled_payout(checked, failed, known), want, "{checked:?} {failed} {known:?}");
        }
    }

    use super::*;

    fn market(json: &str) -> Market {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn gamma_closed_times_are_read_in_both_forms() {
        // (closedTime, unix ms)
        for (given, want) in [
            (Some("2024-11-06 05:12:27+00"), Some(1_730_869_947_000)),
            (Some("2024-11-06T05:12:27Z"), Some(1_730_869_947_000)),
            (Some("2024-11-06 05:12:27.5+00"), Some(1_730_869_947_500)),
            (Some("soon"), None),
            (None, None),
        ] {
            let field = given.map_or(String::new(), |g| format!(r#","closedTime":"{g}""#));
            let m = market(&format!(r#"{{"id":"1"{field}}}"#));
            assert_eq!(closed_at_ms(&m), want, "{given:?}");
        }
    }

    const OPEN: &str = r#"{"id":"521917","question":"Will it rain?","conditionId":"0x62995cb8a7c8c0d216a8882109bd1e05574b5df87d313f06cb3e1cd5593e6d13",
        "endDate":"2026-12-01T12:00:00Z","outcomes":"[\"Yes\", \"No\"]","outcomePrices":"[\"0.42\", \"0.58\"]",
        "active":true,"closed":false,"orderPriceMinTickSize":0.01,"orderMinSize":5,"clobTokenIds":"[\"1001\", \"1002\"]","negRisk":false}"#;

    #[test]
    fn reads_an_open_market_from_gammas_json_strings() {
        let m = market(OPEN);
        let yes = from_gamma(&m, U256::from(1001)).unwrap();
        let no = from_gamma(&m, U256::from(1002)).unwrap();
        assert_eq!((yes.outcome.as_str(), no.outcome.as_str()), ("Yes", "No"));
        assert_eq!(yes.name(), "Will it rain? — Yes");
        assert_eq!(yes.tick.map(TickSize::micros), Some(10_000));
        assert_eq!(yes.min_size, Shares(5 * ONE));
        assert!(!yes.closed && yes.payout.is_none() && !yes.neg_risk);
        assert_eq!(yes.minutes_to_end(yes.end_ms.unwrap() - 90_000), Some(1));
        assert!(from_gamma(&m, U256::from(9)).is_none());
    }

    /// A title or outcome with characters that hide or reorder text, or break a line, is shown
    /// without them.
    #[test]
    fn names_lose_what_would_hide_or_reorder_text() {
        let hostile = OPEN
            .replace("Will it rain?", "Will it \\u202erain?\\u2028forged")
            .replace(r#"\"Yes\""#, r#"\"Y\u200bes\""#);
        let yes = from_gamma(&market(&hostile), U256::from(1001)).unwrap();
        assert_eq!(yes.name(), "Will it rain?forged — Yes");
    }

    #[test]
    fn a_resolved_market_pays_one_to_the_winner_and_zero_to_the_loser() {
        // (closed, prices, winner's payout, loser's payout)
        for (closed, prices, yes, no) in [
            (true, r#""[\"1\", \"0\"]""#, Some(Price(ONE)), Some(Price(0))),
            (true, r#""[\"0\", \"1\"]""#, Some(Price(0)), Some(Price(ONE))),
            // Closed but not resolved yet (prices still trading): no payout.
            (true, r#""[\"0.97\", \"0.03\"]""#, None, None),
            (false, r#""[\"1\", \"0\"]""#, None, None),
        ] {
            let json = OPEN
                .replace(r#""closed":false"#, &format!(r#""closed":{closed}"#))
                .replace(r#""[\"0.42\", \"0.58\"]""#, prices);
            let m = market(&json);
            assert_eq!(from_gamma(&m, U256::from(1001)).unwrap().payout, yes, "{prices}");
            assert_eq!(from_gamma(&m, U256::from(1002)).unwrap().payout, no, "{prices}");
        }
    }

    /// An answer lacking `conditionId`, `negRisk`, the tick, the end or the slug keeps what an
    /// earlier one said; what it says itself, and the payout, are its own.
    #[test]
    fn a_fresh_answer_keeps_what_an_earlier_one_knew_and_it_lacks() {
        let full = from_gamma(&market(&OPEN.replace(r#""negRisk":false"#, r#""negRisk":true"#)), U256::from(1001))
            .map(|i| MarketInfo { slug: Some("rain".into()), payout: Some(Price(ONE)), ..i })
            .unwrap();
        let bare = MarketInfo {
            condition_id: None,
            neg_risk: false,
            tick: None,
            end_ms: None,
            slug: None,
            payout: None,
            question: "Will it rain today?".into(),
            ..full.clone()
        };
        // (fresh, known, kept)
        let cases = [
            (bare.clone(), full.clone(), MarketInfo { payout: None, question: bare.question.clone(), ..full.clone() }),
            (full.clone(), bare.clone(), full.clone()),
            (bare.clone(), bare.clone(), bare.clone()),
        ];
        for (fresh, known, want) in cases {
            assert_eq!(keep_known(fresh.clone(), &known), want, "{fresh:?} over {known:?}");
        }
    }
}

#[cfg(test)]
mod even_payout_tests {
    use super::*;

    #[test]
    fn only_an_even_result_on_chain_pays_each_outcome_its_share() {
        let r = |den: u64, nums: &[u64]| ConditionResult {
            denominator: U256::from(den),
            numerators: nums.iter().map(|n| U256::from(*n)).collect(),
            prepared: true,
        };
        for (result, want) in [
            (r(2, &[1, 1]), Some(Price(ONE / 2))),
            (r(3, &[1, 1, 1]), Some(Price(333_333))),
            (r(2_000_000, &[1_000_000, 1_000_000]), Some(Price(ONE / 2))),
            (r(1, &[1, 0]), None), // a winner: Gamma names it
            (r(1, &[0, 1]), None),
            (r(0, &[]), None), // not reported yet
            (r(1, &[0, 0]), None),
            (r(1, &[]), None),
            (r(1, &[1, 1]), None), // inconsistent: more than the whole
        ] {
            assert_eq!(even_payout(&result), want, "{result:?}");
        }
    }
}
