//! Market filters: a copy is not sent into a closed market, nor does it buy into one that ends too
//! soon. Exits are never held back by the end time (they reduce risk). Unknown metadata filters
//! nothing: the exchange itself refuses orders on a closed market.

use crate::domain::Side;
use crate::market::MarketInfo;
use crate::risk::DenyReason;

/// Checks a copy on `side` against what is known of its market.
///
/// # Errors
/// The rule that holds it back.
pub fn check_market(
    side: Side,
    info: Option<&MarketInfo>,
    skip_closed: bool,
    min_minutes_to_end: u64,
    now_ms: i64,
) -> Result<(), DenyReason> {
    let Some(m) = info else { return Ok(()) };
    if skip_closed && m.closed {
        return Err(DenyReason::MarketClosed);
    }
    if side == Side::Buy
        && min_minutes_to_end > 0
        && let Some(left) = m.minutes_to_end(now_ms)
        && left < i64::try_from(min_minutes_to_end).unwrap_or(i64::MAX)
    {
        return Err(DenyReason::NearEnd { minutes_left: left, min: min_minutes_to_end });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Shares;
    use alloy::primitives::U256;

    fn info(closed: bool, end_in_min: Option<i64>) -> MarketInfo {
        MarketInfo {
            token_id: U256::from(1),
            condition_id: None,
            question: "q".into(),
            outcome: "Yes".into(),
            neg_risk: false,
            tick: None,
            min_size: Shares(0),
            closed,
            end_ms: end_in_min.map(|m| m * 60_000),
            payout: None,
            slug: None,
        }
    }

    #[test]
    fn closed_and_ending_markets_are_held_back_as_configured() {
        // (side, closed, minutes to end, skip_closed, min_minutes_to_end) → code
        for (side, closed, end, skip, min, want) in [
            (Side::Buy, false, Some(600), true, 60, None),
            (Side::Buy, true, Some(600), true, 60, Some("market_closed")),
            (Side::Sell, true, Some(600), true, 0, Some("market_closed")),
            (Side::Buy, true, Some(600), false, 0, None),
            (Side::Buy, false, Some(30), true, 60, Some("near_end")),
            (Side::Sell, false, Some(30), true, 60, None),
            (Side::Buy, false, Some(30), true, 0, None),
            (Side::Buy, false, None, true, 60, None),
        ] {
            let m = info(closed, end);
            let got = check_market(side, Some(&m), skip, min, 0).err().map(|r| r.code());
            assert_eq!(got, want, "{side:?} closed={closed} end={end:?} skip={skip} min={min}");
        }
        assert!(check_market(Side::Buy, None, true, 60, 0).is_ok(), "unknown markets pass");
    }
}
